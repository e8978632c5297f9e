//! RSA decryption off the async workers. A header's blocks are decrypted by
//! a few threads of their own, one block at a time and round-robin between
//! headers (so a header of many blocks cannot hold up one of few), several
//! blocks of one header at once when threads are free; headers
//! from addresses that failed lately wait behind the others. The queue is
//! bounded: when it is full the request is answered "busy" at once.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::oneshot;
use zeroize::Zeroizing;

use crate::keys::TransportKey;

/// The queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// Decrypted blocks, joined, and where each block's plaintext ends.
#[derive(Default)]
pub struct Plain {
    pub bytes: Zeroizing<Vec<u8>>,
    pub ends: Vec<usize>,
}

impl Plain {
    /// Whether a block decrypted to nothing. No client sends one (each
    /// chunk of its header holds something), and one changes a header's
    /// bytes without its text: put between two blocks of the password, it
    /// would make a used header look new to the replay check.
    pub fn has_empty_block(&self) -> bool {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).any(|(start, end)| start == *end)
    }
}

/// One header: its blocks, handed out one at a time, possibly to several
/// threads at once, and their plaintexts as they come.
struct Job {
    blocks: Vec<u8>,
    count: usize,
    suspect: bool,
    state: Mutex<JobState>,
}

struct JobState {
    /// The next block not handed out yet.
    next: usize,
    /// Plaintexts by block; the last one in sends them all.
    plain: Vec<Option<Zeroizing<Vec<u8>>>>,
    finished: usize,
    done: Option<oneshot::Sender<Plain>>,
}

impl Job {
    /// Claims the next block, and whether more remain after it.
    fn claim(&self) -> Option<(usize, bool)> {
        let mut state = self.state.lock().expect("RSA job lock");
        if state.done.as_ref().is_none_or(|d| d.is_closed()) {
            // Nobody waits for it any more (the client went away).
            return None;
        }
        let index = state.next;
        state.next += 1;
        Some((index, state.next < self.count))
    }

    /// Stores a block's plaintext; the last one answers.
    fn finish(&self, index: usize, plain: Zeroizing<Vec<u8>>) {
        let mut state = self.state.lock().expect("RSA job lock");
        state.plain[index] = Some(plain);
        state.finished += 1;
        if state.finished < self.count {
            return;
        }
        let mut joined = Plain::default();
        for block in state.plain.drain(..).flatten() {
            joined.bytes.extend_from_slice(&block);
            joined.ends.push(joined.bytes.len());
        }
        if let Some(done) = state.done.take() {
            let _ = done.send(joined);
        }
    }
}

#[derive(Default)]
struct Queues {
    trusted: VecDeque<Arc<Job>>,
    suspect: VecDeque<Arc<Job>>,
}

impl Queues {
    fn len(&self) -> usize {
        self.trusted.len() + self.suspect.len()
    }

    /// Whether a job may join a line of `capacity`: those of addresses
    /// that failed lately may fill half of it, so however many such
    /// addresses there are, the others still find room.
    fn has_room(&self, suspect: bool, capacity: usize) -> bool {
        self.len() < capacity && !(suspect && self.suspect.len() >= capacity.div_ceil(2))
    }

    fn push(&mut self, job: Arc<Job>) {
        if job.suspect {
            self.suspect.push_back(job);
        } else {
            self.trusted.push_back(job);
        }
    }

    fn pop(&mut self) -> Option<Arc<Job>> {
        self.trusted
            .pop_front()
            .or_else(|| self.suspect.pop_front())
    }
}

struct Shared {
    key: Arc<TransportKey>,
    queues: Mutex<Queues>,
    ready: Condvar,
    capacity: usize,
}

pub struct RsaPool {
    shared: Arc<Shared>,
}

impl RsaPool {
    /// `threads` decrypting threads; at most `capacity` headers waiting.
    pub fn new(key: Arc<TransportKey>, threads: usize, capacity: usize) -> Self {
        let shared = Arc::new(Shared {
            key,
            queues: Mutex::new(Queues::default()),
            ready: Condvar::new(),
            capacity,
        });
        for n in 0..threads.max(1) {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("credhost-rsa-{n}"))
                .spawn(move || work(&shared))
                .expect("cannot start an RSA thread");
        }
        Self { shared }
    }

    pub fn key(&self) -> &TransportKey {
        &self.shared.key
    }

    /// Queues whole blocks for decryption; the answer is their joined
    /// plaintexts.
    pub fn decrypt(
        &self,
        blocks: Vec<u8>,
        suspect: bool,
    ) -> Result<oneshot::Receiver<Plain>, Busy> {
        let (done, answer) = oneshot::channel();
        let count = blocks.len() / self.shared.key.block_len();
        if count == 0 {
            let _ = done.send(Plain::default());
            return Ok(answer);
        }
        let mut queues = self.shared.queues.lock().expect("RSA queue lock");
        if !queues.has_room(suspect, self.shared.capacity) {
            return Err(Busy);
        }
        queues.push(Arc::new(Job {
            blocks,
            count,
            suspect,
            state: Mutex::new(JobState {
                next: 0,
                plain: vec![None; count],
                finished: 0,
                done: Some(done),
            }),
        }));
        drop(queues);
        self.shared.ready.notify_one();
        Ok(answer)
    }
}

fn work(shared: &Shared) {
    let block_len = shared.key.block_len();
    loop {
        let job = {
            let mut queues = shared.queues.lock().expect("RSA queue lock");
            loop {
                if let Some(job) = queues.pop() {
                    break job;
                }
                queues = shared.ready.wait(queues).expect("RSA queue lock");
            }
        };
        let Some((index, more)) = job.claim() else {
            continue;
        };
        if more {
            // Back in line at once: another thread may take its next block
            // while this one decrypts, after the other headers' turns.
            shared
                .queues
                .lock()
                .expect("RSA queue lock")
                .push(job.clone());
            shared.ready.notify_one();
        }
        let block = &job.blocks[index * block_len..(index + 1) * block_len];
        job.finish(index, shared.key.decrypt_block(block));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(suspect: bool) -> Arc<Job> {
        Arc::new(Job {
            blocks: Vec::new(),
            count: 0,
            suspect,
            state: Mutex::new(JobState {
                next: 0,
                plain: Vec::new(),
                finished: 0,
                done: None,
            }),
        })
    }

    #[test]
    fn addresses_that_failed_lately_fill_half_the_line_at_most() {
        let mut queues = Queues::default();
        for _ in 0..2 {
            assert!(queues.has_room(true, 4));
            queues.push(job(true));
        }
        assert!(!queues.has_room(true, 4));
        assert!(queues.has_room(false, 4));
        queues.push(job(false));
        queues.push(job(false));
        assert!(!queues.has_room(false, 4));
    }
}
