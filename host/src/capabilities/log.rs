//! Plugin log lines, into the host's `tracing` under the target `plugin`.

/// How much of one plugin log line is kept.
const MAX_LINE: usize = 4096;
/// How much of a line held to be masked is kept until it is: a secret that
/// starts within the line's first `MAX_LINE` bytes is found whole if it is
/// shorter than 40 KiB (a private key is at most 16 KiB, more as JSON
/// quotes it); of a longer one, what the cut left is masked.
const HELD_LINE: usize = MAX_LINE + 40 * 1024;

/// What one call may log: its lines go to the host's own log, which a
/// plugin must not be able to flood.
const CALL_LINES: u32 = 100;
const CALL_BYTES: usize = 64 * 1024;

/// What all the calls of one verification may log together (a call per
/// target, and a run per ask): per call, a credential of 1,000 targets
/// could log hundreds of megabytes.
const VERIFICATION_LINES: u32 = 1_000;
const VERIFICATION_BYTES: usize = 256 * 1024;

/// What is left of one call's, or one verification's, log lines.
#[derive(Debug)]
pub struct LogBudget {
    lines: u32,
    bytes: usize,
    /// What the budget was, and for what, to say so when it runs out.
    limit: (u32, usize, &'static str),
    /// Whether the call was told it ran out (once).
    spent: bool,
    /// Lines of a call without a masking grant, logged when it ends (see
    /// [`LogBudget::hold`]).
    held: Vec<Held>,
}

/// A line held to be masked, and whether it was cut to be held (it may end
/// inside a secret).
pub struct Held {
    level: Level,
    line: String,
    cut: bool,
}

impl std::fmt::Debug for Held {
    // The line is not masked yet: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Held({:?}, {} bytes)", self.level, self.line.len())
    }
}

/// A verification's budget, shared by its calls.
pub type SharedLog = std::sync::Arc<std::sync::Mutex<LogBudget>>;

impl Default for LogBudget {
    fn default() -> Self {
        Self::new(CALL_LINES, CALL_BYTES, "one call")
    }
}

impl LogBudget {
    fn new(lines: u32, bytes: usize, what: &'static str) -> Self {
        Self {
            lines,
            bytes,
            limit: (lines, bytes, what),
            spent: false,
            held: Vec::new(),
        }
    }

    pub fn verification() -> SharedLog {
        std::sync::Arc::new(std::sync::Mutex::new(Self::new(
            VERIFICATION_LINES,
            VERIFICATION_BYTES,
            "one verification",
        )))
    }

    /// Logs `message` if the call may still log, and so may the
    /// verification it is part of (`shared`); the first line past either
    /// budget is replaced by one saying the rest are dropped.
    pub fn emit(
        &mut self,
        shared: Option<&mut LogBudget>,
        plugin: &str,
        level: Level,
        message: &str,
    ) {
        if self.admit(shared, plugin, message.len().min(MAX_LINE)) {
            emit(plugin, level, message);
        }
    }

    /// Keeps `message`, within the same budget, to be logged when the call
    /// ends ([`LogBudget::take_held`]): a call that is not verifying has
    /// its secrets in its input (a property, a plaintext), which the host
    /// masks in its lines only once it knows there are any.
    /// It is cut to [`MAX_LINE`] only once masked, and what is kept of it
    /// counts against the budget.
    pub fn hold(&mut self, plugin: &str, level: Level, mut message: String) {
        let cut = message.len() > HELD_LINE;
        message.truncate(message.floor_char_boundary(HELD_LINE));
        if self.admit(None, plugin, message.len()) {
            self.held.push(Held {
                level,
                line: message,
                cut,
            });
        }
    }

    pub fn take_held(&mut self) -> Vec<Held> {
        std::mem::take(&mut self.held)
    }

    /// Whether a line that costs `len` bytes may be logged, spending them
    /// if so.
    fn admit(&mut self, shared: Option<&mut LogBudget>, plugin: &str, len: usize) -> bool {
        let fits = self.fits(len) && shared.as_ref().is_none_or(|s| s.fits(len));
        if fits {
            self.spend(len);
            if let Some(shared) = shared {
                shared.spend(len);
            }
            return true;
        }
        for budget in std::iter::once(self).chain(shared) {
            if !budget.fits(len) && !budget.spent {
                budget.spent = true;
                let (lines, bytes, what) = budget.limit;
                tracing::warn!(
                    target: "plugin",
                    plugin,
                    "logged more than {lines} lines or {bytes} bytes in {what}: \
                     the rest of its lines are dropped"
                );
            }
        }
        false
    }

    fn fits(&self, len: usize) -> bool {
        self.lines > 0 && len <= self.bytes
    }

    fn spend(&mut self, len: usize) {
        self.lines -= 1;
        self.bytes -= len;
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Logs the lines a call held, with `scrubber` masking its secrets.
pub fn flush(plugin: &str, held: Vec<Held>, scrubber: &crate::plugins::Scrubber) {
    if scrubber.drops() {
        return;
    }
    for Held { level, line, cut } in held {
        emit(plugin, level, &scrubber.apply_to(line, cut));
    }
}

fn emit(plugin: &str, level: Level, message: &str) {
    let message = &message[..message.floor_char_boundary(MAX_LINE)];
    match level {
        Level::Trace => tracing::trace!(target: "plugin", plugin, "{message:?}"),
        Level::Debug => tracing::debug!(target: "plugin", plugin, "{message:?}"),
        Level::Info => tracing::info!(target: "plugin", plugin, "{message:?}"),
        Level::Warn => tracing::warn!(target: "plugin", plugin, "{message:?}"),
        Level::Error => tracing::error!(target: "plugin", plugin, "{message:?}"),
    }
}

// ---- The `log` interface of each contract version (both worlds share it) ----

use crate::plugins::bindings::{v0_1, v0_2, v0_3};
use crate::plugins::state::CallState;

pub fn link(linkers: &mut super::Linkers) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    for linker in [&mut linkers.verifier_v0_1, &mut linkers.policy_v0_1] {
        v0_1::verifier::credhost::plugin::log::add_to_linker::<_, HasSelf<CallState>>(
            linker,
            |s| s,
        )?;
        v0_1::verifier::credhost::plugin::types::add_to_linker::<_, HasSelf<CallState>>(
            linker,
            |s| s,
        )?;
    }
    for linker in [&mut linkers.verifier_v0_2, &mut linkers.policy_v0_2] {
        v0_2::verifier::credhost::plugin::log::add_to_linker::<_, HasSelf<CallState>>(
            linker,
            |s| s,
        )?;
        v0_2::verifier::credhost::plugin::types::add_to_linker::<_, HasSelf<CallState>>(
            linker,
            |s| s,
        )?;
    }
    for linker in [&mut linkers.verifier_v0_3, &mut linkers.policy_v0_3] {
        v0_3::verifier::credhost::plugin::log::add_to_linker::<_, HasSelf<CallState>>(
            linker,
            |s| s,
        )?;
        v0_3::verifier::credhost::plugin::types::add_to_linker::<_, HasSelf<CallState>>(
            linker,
            |s| s,
        )?;
    }
    Ok(())
}

macro_rules! log_host {
    ($version:ident) => {
        impl $version::verifier::credhost::plugin::types::Host for CallState {}

        impl $version::verifier::credhost::plugin::log::Host for CallState {
            fn emit(
                &mut self,
                level: $version::verifier::credhost::plugin::log::Level,
                message: String,
            ) {
                use $version::verifier::credhost::plugin::log::Level as L;
                let level = match level {
                    L::Trace => Level::Trace,
                    L::Debug => Level::Debug,
                    L::Info => Level::Info,
                    L::Warn => Level::Warn,
                    L::Error => Level::Error,
                };
                if !self.grant.masks() {
                    self.log.hold(&self.plugin, level, message);
                    return;
                }
                // A verification's lines are logged as they come (it may
                // wait on the network for a minute), its secret masked.
                let message = self.grant.scrub(message);
                let mut shared = (self.grant.log())
                    .map(|s| s.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
                self.log
                    .emit(shared.as_deref_mut(), &self.plugin, level, &message);
            }
        }
    };
}

log_host!(v0_1);
log_host!(v0_2);
log_host!(v0_3);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_line_is_kept_whole_past_a_line_until_masked() {
        // A secret across the 4 KiB a line shows must be whole to be found.
        let mut budget = LogBudget::default();
        let line = format!("{}Secret-Across-The-Cut", "x".repeat(MAX_LINE - 6));
        budget.hold("p", Level::Info, line.clone());
        let held = budget.take_held();
        assert_eq!(held[0].line, line);
        assert!(!held[0].cut);
        // What is kept counts against the budget: bytes, not just lines.
        let long = "y".repeat(2 * HELD_LINE);
        budget.hold("p", Level::Info, long);
        let held = budget.take_held();
        assert_eq!(held[0].line.len(), HELD_LINE);
        assert!(held[0].cut);
        assert!(budget.bytes < CALL_BYTES - HELD_LINE);
    }

    #[test]
    fn a_call_logs_at_most_its_budget() {
        let mut budget = LogBudget::default();
        for _ in 0..CALL_LINES {
            budget.emit(None, "p", Level::Debug, "a line");
        }
        assert_eq!((budget.lines, budget.spent), (0, false));
        budget.emit(None, "p", Level::Error, "one too many");
        budget.emit(None, "p", Level::Error, "and another");
        assert!(budget.spent);
        // Long lines spend the bytes first; each counts as cut.
        let mut budget = LogBudget::default();
        let long = "é".repeat(10_000);
        for _ in 0..16 {
            budget.emit(None, "p", Level::Info, &long);
        }
        assert_eq!(budget.bytes, 0);
        assert!(!budget.spent);
        budget.emit(None, "p", Level::Info, "x");
        assert!(budget.spent);
    }
}
