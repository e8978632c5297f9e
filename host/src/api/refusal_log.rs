//! The server's own log line for each refused request, within a budget. A
//! refusal costs a client nothing (a 404 needs no password), and its line
//! quoted the request's path whole: a client could write to the log disk,
//! or past the journal's rate limit, as fast as it could send. Refusals are
//! counted in the metrics and, where it matters, audited; past the budget
//! their lines are dropped and counted, and the next line says how many.

use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use crate::connections::Bucket;

/// Lines logged at once, then per second.
const BURST: f64 = 200.0;
const PER_SECOND: f64 = 2.0;
/// What of a client's text (a path, a message quoting it) a line keeps.
pub const MAX_QUOTED: usize = 256;

struct Budget {
    lines: Bucket,
    dropped: u64,
}

static BUDGET: LazyLock<Mutex<Budget>> = LazyLock::new(|| {
    Mutex::new(Budget {
        lines: Bucket::full(BURST, PER_SECOND, Instant::now()),
        dropped: 0,
    })
});

/// Whether a refusal's line may be logged now; if so, how many were
/// dropped since the last one that was.
pub fn admit() -> Option<u64> {
    let mut budget = BUDGET
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if budget.lines.refill(Instant::now()) < 1.0 {
        budget.dropped += 1;
        return None;
    }
    budget.lines.spend();
    Some(std::mem::take(&mut budget.dropped))
}

/// The start of `text`, at most [`MAX_QUOTED`] bytes, marked if cut.
pub fn cut(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_QUOTED {
        return text.into();
    }
    let mut end = MAX_QUOTED;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_on_a_character() {
        assert_eq!(cut("/api/v1"), "/api/v1");
        let long = "é".repeat(200);
        let cut = cut(&long);
        assert!(cut.starts_with(&"é".repeat(128)), "{cut}");
        assert!(cut.ends_with("… (400 bytes)"), "{cut}");
    }
}
