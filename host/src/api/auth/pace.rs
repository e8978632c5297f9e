//! How fast one caller may send requests: a token bucket per API token, and
//! per client (an IPv4 address or an IPv6 /64) for the v2 password, which
//! everyone who knows it shares. Past its rate a caller gets 429 with
//! `Retry-After`, and its refused requests reach the audit log only within
//! the allowance of requests nobody answers for: one caller can neither
//! keep the server for itself nor fill the audit log fast enough to rotate
//! older records away within minutes.
//!
//! Not paced here: the server's own socket (its owner runs the server),
//! the routes anyone may call (bounded by the connection caps and the audit
//! allowance), and a server without a password (loopback only).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::connections::{Bucket, client_of};
use crate::service::Principal;

#[derive(Debug, Clone, Copy)]
pub struct PaceLimits {
    /// Requests a caller may make per second, on average (0: no limit).
    pub per_second: u32,
    /// Requests a caller may make at once after a quiet spell (at least 1).
    pub burst: u32,
}

impl PaceLimits {
    pub const UNLIMITED: Self = Self {
        per_second: 0,
        burst: 0,
    };
}

/// Callers tracked before idle ones are dropped; past that, newcomers
/// share one bucket until some become idle.
const MAX_CALLERS: usize = 65_536;

pub struct Pace {
    limits: PaceLimits,
    callers: Mutex<Callers>,
}

#[derive(Default)]
struct Callers {
    tokens: HashMap<Box<str>, Bucket>,
    clients: HashMap<IpAddr, Bucket>,
    /// The bucket of callers that found the table full.
    overflow: Option<Bucket>,
    swept: Option<Instant>,
}

impl Callers {
    fn len(&self) -> usize {
        self.tokens.len() + self.clients.len()
    }

    /// When the table is full, drops the callers whose bucket has filled
    /// up again (they are as good as new), at most once a second so a full
    /// table costs no sweep per request.
    fn sweep_if_full(&mut self, now: Instant) {
        let recently = self
            .swept
            .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1));
        if self.len() < MAX_CALLERS || recently {
            return;
        }
        self.tokens.retain(|_, b| !b.is_full_at(now));
        self.clients.retain(|_, b| !b.is_full_at(now));
        self.swept = Some(now);
    }
}

enum Caller<'p> {
    Token(&'p str),
    Client(IpAddr),
}

impl Pace {
    pub fn new(limits: PaceLimits) -> Self {
        Self {
            limits,
            callers: Mutex::default(),
        }
    }

    /// Counts one request of `principal` from `peer`; `Err` with the
    /// seconds to wait when it is past its rate.
    pub fn admit(&self, principal: &Principal, peer: IpAddr, now: Instant) -> Result<(), u64> {
        let PaceLimits { per_second, burst } = self.limits;
        if per_second == 0 {
            return Ok(());
        }
        let caller = match principal {
            Principal::Token { id, .. } => Caller::Token(id),
            Principal::V2Password => Caller::Client(client_of(peer)),
            Principal::Anonymous | Principal::Local => return Ok(()),
        };
        let fresh = || Bucket::full(f64::from(burst.max(1)), f64::from(per_second), now);
        // Buckets hold no invariant a panic elsewhere could break.
        let mut guard = self
            .callers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let callers = &mut *guard;
        let take = |bucket: &mut Bucket| {
            let tokens = bucket.refill(now);
            if tokens >= 1.0 {
                bucket.spend();
                return Ok(());
            }
            Err(((1.0 - tokens) / f64::from(per_second)).ceil().max(1.0) as u64)
        };
        let known = match caller {
            Caller::Token(id) => callers.tokens.get_mut(id),
            Caller::Client(ip) => callers.clients.get_mut(&ip),
        };
        if let Some(bucket) = known {
            return take(bucket);
        }
        callers.sweep_if_full(now);
        take(match caller {
            _ if callers.len() >= MAX_CALLERS => callers.overflow.get_or_insert_with(fresh),
            // A token's id is copied only the first time it is seen.
            Caller::Token(id) => callers.tokens.entry(id.into()).or_insert_with(fresh),
            Caller::Client(ip) => callers.clients.entry(ip).or_insert_with(fresh),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Scope;

    fn token(id: &str) -> Principal {
        Principal::Token {
            id: id.into(),
            name: "t".into(),
            scope: Scope::Read,
            expires_us: None,
        }
    }

    #[test]
    fn a_caller_gets_its_burst_then_its_rate() {
        let pace = Pace::new(PaceLimits {
            per_second: 2,
            burst: 3,
        });
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(pace.admit(&token("a"), ip, start), Ok(()));
        }
        assert_eq!(pace.admit(&token("a"), ip, start), Err(1));
        // Another token, and the password from another client, have their own.
        assert_eq!(pace.admit(&token("b"), ip, start), Ok(()));
        assert_eq!(pace.admit(&Principal::V2Password, ip, start), Ok(()));
        let later = start + Duration::from_millis(500);
        assert_eq!(pace.admit(&token("a"), ip, later), Ok(()));
        assert_eq!(pace.admit(&token("a"), ip, later), Err(1));
    }

    #[test]
    fn the_password_is_paced_per_client_and_the_rest_not_at_all() {
        let pace = Pace::new(PaceLimits {
            per_second: 1,
            burst: 1,
        });
        let now = Instant::now();
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8::2".parse().unwrap();
        let other: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        assert_eq!(pace.admit(&Principal::V2Password, a, now), Ok(()));
        assert!(pace.admit(&Principal::V2Password, same_64, now).is_err());
        assert_eq!(pace.admit(&Principal::V2Password, other, now), Ok(()));
        for _ in 0..10 {
            assert_eq!(pace.admit(&Principal::Local, a, now), Ok(()));
            assert_eq!(pace.admit(&Principal::Anonymous, a, now), Ok(()));
        }
        let off = Pace::new(PaceLimits::UNLIMITED);
        for _ in 0..10 {
            assert_eq!(off.admit(&token("a"), a, now), Ok(()));
        }
    }

    #[test]
    fn the_table_stays_bounded_and_newcomers_share_when_it_is_full() {
        let pace = Pace::new(PaceLimits {
            per_second: 1,
            burst: 1,
        });
        let now = Instant::now();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for i in 0..MAX_CALLERS {
            assert_eq!(pace.admit(&token(&i.to_string()), ip, now), Ok(()));
        }
        // Every bucket is empty, none can go: the next two share one.
        assert_eq!(pace.admit(&token("late-1"), ip, now), Ok(()));
        assert!(pace.admit(&token("late-2"), ip, now).is_err());
        assert_eq!(pace.callers.lock().unwrap().len(), MAX_CALLERS);
        // Once they have filled up again, they make room.
        let later = now + Duration::from_secs(2);
        assert_eq!(pace.admit(&token("late-3"), ip, later), Ok(()));
        assert_eq!(pace.callers.lock().unwrap().len(), 1);
    }
}
