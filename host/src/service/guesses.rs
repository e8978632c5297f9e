//! How many secrets one caller may send that one target rejects. A create,
//! an update with a passphrase or a validate logs in to every target with
//! the secret the caller sent: a password guess credhost makes for the
//! caller, from an address the target trusts enough to let it try. Unbounded,
//! credhost would be a fast password guesser against every target the
//! operator allows, and the target's own defences (fail2ban, say) would ban
//! credhost itself, for everyone.
//!
//! So each caller has a bucket per target address: every login with a sent
//! secret takes a token before it starts, and gets it back unless the
//! target rejected the secret (`AUTH_FAILED`). A caller whose bucket for a
//! target is empty does not reach that target with sent secrets
//! (`THROTTLED`) until the bucket has regained a token. Taking the token
//! first bounds concurrent guesses too. Stored secrets are not counted:
//! logging in with one again guesses nothing. Another caller has its own
//! buckets, so one caller's failures do not lock others out; a target holds
//! at most one credential of a type, so no honest caller needs many logins
//! to one target at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::budget::Client;
use crate::connections::Bucket;
use crate::plugins::{Detail, Reason, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuessLimits {
    /// Rejected secrets a caller may send to one target at once.
    pub burst: u32,
    /// And regains per hour (0: no limit at all).
    pub per_hour: u32,
}

impl Default for GuessLimits {
    fn default() -> Self {
        Self {
            burst: 10,
            per_hour: 60,
        }
    }
}

/// Buckets kept before full ones are dropped; past that, newcomers share
/// one, so a flood of callers or targets cannot grow the table.
const MAX_BUCKETS: usize = 65_536;

pub struct Guesses {
    limits: GuessLimits,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    buckets: HashMap<(Client, IpAddr), Bucket>,
    overflow: Option<Bucket>,
    swept: Option<Instant>,
}

/// Logins a caller may start now: one entry per target, in order.
pub struct Admitted {
    client: Client,
    /// `None`: may be dialled (a token taken); `Some`: held, and why.
    held: Vec<Option<Detail>>,
}

impl Admitted {
    pub fn dial(&self) -> Vec<bool> {
        self.held.iter().map(Option::is_none).collect()
    }

    pub fn any(&self) -> bool {
        self.held.iter().any(Option::is_none)
    }
}

impl Guesses {
    pub fn new(limits: GuessLimits) -> Self {
        Self {
            limits,
            table: Mutex::default(),
        }
    }

    fn per_second(&self) -> f64 {
        f64::from(self.limits.per_hour) / 3600.0
    }

    fn fresh(&self, now: Instant) -> Bucket {
        Bucket::full(f64::from(self.limits.burst.max(1)), self.per_second(), now)
    }

    /// Takes a token for every target `client` may reach now.
    pub fn admit(&self, client: &Client, targets: &[Target], now: Instant) -> Admitted {
        let held = targets
            .iter()
            .map(|target| {
                if self.limits.per_hour == 0 {
                    return None;
                }
                self.with_bucket(client, target.ip, now, |bucket| {
                    let tokens = bucket.refill(now);
                    if tokens >= 1.0 {
                        bucket.spend();
                        return None;
                    }
                    let wait = ((1.0 - tokens) / self.per_second()).ceil().max(1.0);
                    Some(Duration::from_secs(wait as u64))
                })
                .map(|wait| {
                    Detail::new(
                        (*target).into(),
                        Reason::Throttled,
                        format!(
                            "not tried: this caller's secrets for {} were rejected too often \
                             recently; try again in {} s",
                            target.ip,
                            wait.as_secs()
                        ),
                    )
                })
            })
            .collect();
        Admitted {
            client: client.clone(),
            held,
        }
    }

    /// Gives back the tokens of the logins the targets did not reject, and
    /// puts the held targets' details in place of what was not dialled.
    pub fn conclude(
        &self,
        admitted: Admitted,
        targets: &[Target],
        details: Vec<Detail>,
        now: Instant,
    ) -> Vec<Detail> {
        targets
            .iter()
            .zip(admitted.held)
            .zip(details)
            .map(|((target, held), detail)| match held {
                Some(held) => held,
                None => {
                    if detail.reason != Reason::AuthFailed && self.limits.per_hour != 0 {
                        self.with_bucket(&admitted.client, target.ip, now, Bucket::give_back);
                    }
                    detail
                }
            })
            .collect()
    }

    /// Gives back every token taken: nothing was tried.
    pub fn refund(&self, admitted: Admitted, targets: &[Target], now: Instant) {
        if self.limits.per_hour == 0 {
            return;
        }
        for (target, held) in targets.iter().zip(admitted.held) {
            if held.is_none() {
                self.with_bucket(&admitted.client, target.ip, now, Bucket::give_back);
            }
        }
    }

    fn with_bucket<R>(
        &self,
        client: &Client,
        ip: IpAddr,
        now: Instant,
        f: impl FnOnce(&mut Bucket) -> R,
    ) -> R {
        // Buckets hold no invariant a panic elsewhere could break.
        let mut table = self
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (client.clone(), ip.to_canonical());
        if let Some(bucket) = table.buckets.get_mut(&key) {
            return f(bucket);
        }
        table.sweep_if_full(now);
        let fresh = self.fresh(now);
        if table.buckets.len() >= MAX_BUCKETS {
            return f(table.overflow.get_or_insert(fresh));
        }
        f(table.buckets.entry(key).or_insert(fresh))
    }
}

impl Table {
    /// When the table is full, drops the buckets that have filled up again
    /// (they are as good as new), at most once a second.
    fn sweep_if_full(&mut self, now: Instant) {
        let recently = self
            .swept
            .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1));
        if self.buckets.len() < MAX_BUCKETS || recently {
            return;
        }
        self.buckets.retain(|_, b| !b.is_full_at(now));
        self.swept = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::Endpoint;

    fn target(ip: &str) -> Target {
        Target {
            ip: ip.parse().unwrap(),
            port: 22,
        }
    }

    fn detail(t: &Target, reason: Reason) -> Detail {
        Detail::new((*t).into(), reason, String::new())
    }

    #[test]
    fn rejections_spend_and_everything_else_gives_back() {
        let guesses = Guesses::new(GuessLimits {
            burst: 2,
            per_hour: 3600,
        });
        let (a, b) = (Client::new("a"), Client::new("b"));
        let targets = [target("127.0.0.1"), target("127.0.0.2")];
        let now = Instant::now();
        // Successes and unreachable targets cost nothing.
        for reason in [Reason::Ok, Reason::Unreachable, Reason::Timeout] {
            let admitted = guesses.admit(&a, &targets, now);
            assert_eq!(admitted.dial(), [true, true]);
            let details = targets.iter().map(|t| detail(t, reason)).collect();
            guesses.conclude(admitted, &targets, details, now);
        }
        // Two rejections at the first target use up its bucket.
        for _ in 0..2 {
            let admitted = guesses.admit(&a, &targets, now);
            let details = vec![
                detail(&targets[0], Reason::AuthFailed),
                detail(&targets[1], Reason::Ok),
            ];
            guesses.conclude(admitted, &targets, details, now);
        }
        let admitted = guesses.admit(&a, &targets, now);
        assert_eq!(admitted.dial(), [false, true]);
        let details = guesses.conclude(
            admitted,
            &targets,
            vec![
                detail(&targets[0], Reason::NotGranted),
                detail(&targets[1], Reason::Ok),
            ],
            now,
        );
        assert_eq!(details[0].reason, Reason::Throttled);
        assert_eq!(details[0].target, Endpoint::from(targets[0]));
        assert!(
            details[0].message.contains("try again in 1 s"),
            "{details:?}"
        );
        assert_eq!(details[1].reason, Reason::Ok);
        // Another caller is not held; the first regains a token in time.
        assert_eq!(guesses.admit(&b, &targets, now).dial(), [true, true]);
        let later = now + Duration::from_secs(1);
        assert_eq!(guesses.admit(&a, &targets, later).dial(), [true, true]);
    }

    #[test]
    fn tokens_are_taken_before_the_login_so_concurrent_guesses_are_bounded() {
        let guesses = Guesses::new(GuessLimits {
            burst: 3,
            per_hour: 1,
        });
        let a = Client::new("a");
        let one = [target("::ffff:127.0.0.1")];
        let same = [target("127.0.0.1")];
        let now = Instant::now();
        let in_flight: Vec<_> = (0..3).map(|_| guesses.admit(&a, &one, now)).collect();
        assert!(in_flight.iter().all(Admitted::any));
        // The same address spelt another way is the same target.
        assert!(!guesses.admit(&a, &same, now).any());
        // A call that tried nothing gives its token back.
        let mut in_flight = in_flight.into_iter();
        guesses.refund(in_flight.next().unwrap(), &one, now);
        assert!(guesses.admit(&a, &same, now).any());
    }

    #[test]
    fn no_limit_when_nothing_is_regained() {
        let guesses = Guesses::new(GuessLimits {
            burst: 1,
            per_hour: 0,
        });
        let a = Client::new("a");
        let one = [target("127.0.0.1")];
        let now = Instant::now();
        for _ in 0..5 {
            let admitted = guesses.admit(&a, &one, now);
            assert!(admitted.any());
            guesses.conclude(
                admitted,
                &one,
                vec![detail(&one[0], Reason::AuthFailed)],
                now,
            );
        }
    }
}
