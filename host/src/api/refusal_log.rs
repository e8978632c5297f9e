//! The server's own log line for each refused request, within a budget. A
//! refusal costs a client nothing (a 404 needs no password), and its line
//! quoted the request's path whole: a client could write to the log disk,
//! or past the journal's rate limit, as fast as it could send. Refusals are
//! counted in the metrics and, where it matters, audited; past the budget
//! their lines are dropped and counted, and the next line says how many.
//! Each client has a budget of its own, so one that floods silences only
//! itself; all of them together have one too, so many addresses cannot
//! add up to a flood. An internal error (500) is always logged.

use std::net::IpAddr;
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use crate::connections::{Bucket, ClientTable};

/// Lines of one client logged at once, then per second.
const CLIENT_BURST: f64 = 50.0;
const CLIENT_PER_SECOND: f64 = 1.0;
/// The same for all clients together.
const ALL_BURST: f64 = 500.0;
const ALL_PER_SECOND: f64 = 10.0;
/// Clients tracked at once; past that, new ones share one budget.
const MAX_CLIENTS: usize = 10_000;
/// What of a client's text (a path, a message quoting it) a line keeps.
pub const MAX_QUOTED: usize = 256;

struct Budget {
    clients: ClientTable<Bucket>,
    all: Bucket,
    dropped: u64,
}

static BUDGET: LazyLock<Mutex<Budget>> = LazyLock::new(|| {
    Mutex::new(Budget {
        clients: ClientTable::default(),
        all: Bucket::full(ALL_BURST, ALL_PER_SECOND, Instant::now()),
        dropped: 0,
    })
});

/// Whether a refusal of `client`'s may be logged now (an internal error
/// always is: a 503 of a server under load is not one); if so, how many
/// were dropped since the last one that was.
pub fn admit(client: Option<IpAddr>, internal_error: bool) -> Option<u64> {
    let mut budget = BUDGET
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let budget = &mut *budget;
    if internal_error {
        return Some(std::mem::take(&mut budget.dropped));
    }
    let now = Instant::now();
    let (_, own) = budget.clients.entry(
        client.unwrap_or(IpAddr::from([0, 0, 0, 0])),
        MAX_CLIENTS,
        now,
        |_, bucket| !bucket.is_full_at(now),
        || Bucket::full(CLIENT_BURST, CLIENT_PER_SECOND, now),
    );
    if own.refill(now) < 1.0 || budget.all.refill(now) < 1.0 {
        budget.dropped += 1;
        return None;
    }
    own.spend();
    budget.all.spend();
    Some(std::mem::take(&mut budget.dropped))
}

/// The start of `text`, at most [`MAX_QUOTED`] bytes, marked if cut.
pub fn cut(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_QUOTED {
        return text.into();
    }
    let end = text.floor_char_boundary(MAX_QUOTED);
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

    #[test]
    fn a_client_that_floods_silences_only_itself() {
        let flooder = Some(IpAddr::from([192, 0, 2, 1]));
        let logged = (0..200).filter(|_| admit(flooder, false).is_some()).count();
        assert!((50..=52).contains(&logged), "{logged}");
        assert!(admit(Some(IpAddr::from([192, 0, 2, 2])), false).is_some());
        assert!(admit(flooder, true).is_some(), "a server error is logged");
    }
}
