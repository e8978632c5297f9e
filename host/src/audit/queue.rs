//! The audit writer's queue. Most records (every read) only need to reach
//! the file soon, not now: the writer is woken when the queue stops being
//! empty and then lets records gather for a moment, so a busy server wakes
//! it a few hundred times a second rather than once per request. A record
//! someone waits for (a change's, before it is made) wakes it at once.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use super::writer::Command;

/// How long the writer lets records gather once woken by one nobody waits for.
const GATHER: Duration = Duration::from_millis(2);

#[derive(Debug)]
pub struct Full;

#[derive(Default)]
struct State {
    commands: Vec<Command>,
    /// Someone waits for a queued record: write without gathering.
    urgent: bool,
    closed: bool,
}

pub struct Queue {
    limit: usize,
    state: Mutex<State>,
    ready: Condvar,
}

impl Queue {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            state: Mutex::default(),
            ready: Condvar::new(),
        }
    }

    pub fn push(&self, command: Command) -> Result<(), Full> {
        let urgent = command.awaited();
        let mut state = self.state.lock().expect("audit queue lock");
        if state.commands.len() >= self.limit || state.closed {
            return Err(Full);
        }
        let was_empty = state.commands.is_empty();
        state.commands.push(command);
        state.urgent |= urgent;
        drop(state);
        if urgent || was_empty {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Stops taking commands; the writer drains what is queued and ends.
    pub fn close(&self) {
        self.state.lock().expect("audit queue lock").closed = true;
        self.ready.notify_one();
    }

    /// The next batch, once there is one; `None` when closed and drained.
    pub fn take(&self) -> Option<Vec<Command>> {
        let mut state = self.state.lock().expect("audit queue lock");
        while state.commands.is_empty() {
            if state.closed {
                return None;
            }
            state = self.ready.wait(state).expect("audit queue lock");
        }
        if !state.urgent && !state.closed {
            state = self
                .ready
                .wait_timeout_while(state, GATHER, |s| !s.urgent && !s.closed)
                .expect("audit queue lock")
                .0;
        }
        state.urgent = false;
        Some(std::mem::take(&mut state.commands))
    }
}
