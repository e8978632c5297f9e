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
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::budget::Client;
use crate::connections::{Bucket, client_of};
use crate::plugins::{Detail, Reason, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuessLimits {
    /// Rejected secrets a caller may send to one host at once.
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

/// Buckets kept before full ones are dropped, in all and per caller; past
/// either, a caller's newcomers share one bucket of that caller's, so a
/// flood of targets throttles mostly whoever sends it.
const MAX_BUCKETS: usize = 65_536;
const MAX_BUCKETS_PER_CALLER: usize = 4_096;

/// The host of a caller's shared bucket: no target has it.
const SHARED: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// What costs the token: the target judged the secret, or may have.
/// Everything else shows the secret was accepted or never sent.
fn spends(reason: Reason) -> bool {
    matches!(reason, Reason::AuthFailed | Reason::ProtocolError)
}

/// The host a target address names, as far as addresses tell: every
/// loopback address is this machine, an IPv6 /64 is one host's as much as
/// one address of it is (a host may answer on all of it), and NAT64's
/// well-known prefix names the IPv4 address it carries. Otherwise one host
/// would be as many as its addresses, each with an allowance of its own.
fn host_of(ip: IpAddr) -> IpAddr {
    const NAT64: [u16; 6] = [0x64, 0xff9b, 0, 0, 0, 0];
    let ip = match ip.to_canonical() {
        IpAddr::V6(v6) if v6.segments()[..6] == NAT64 => {
            let [.., a, b, c, d] = v6.octets();
            IpAddr::V4(Ipv4Addr::new(a, b, c, d))
        }
        ip => ip,
    };
    if ip.is_loopback() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        client_of(ip)
    }
}

pub struct Guesses {
    limits: GuessLimits,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    buckets: HashMap<(Client, IpAddr), Bucket>,
    /// Each caller's buckets, its shared one left out.
    per_caller: HashMap<Client, usize>,
    swept: Option<Instant>,
}

/// Hosts a caller may reach now. A request tries one secret, so it takes
/// one token per host however many of its targets are that host's.
pub struct Admitted {
    client: Client,
    /// Each target's host, in order.
    hosts: Vec<IpAddr>,
    /// `None`: may be dialled (its host's token taken); `Some`: held.
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

    /// Takes a token for every host of `targets` that `client` may reach
    /// now.
    pub fn admit(&self, client: &Client, targets: &[Target], now: Instant) -> Admitted {
        let hosts: Vec<IpAddr> = targets.iter().map(|t| host_of(t.ip)).collect();
        let mut decided: Vec<(IpAddr, Option<u64>)> = Vec::new();
        let held = targets
            .iter()
            .zip(&hosts)
            .map(|(target, host)| {
                let wait = match decided.iter().find(|(h, _)| h == host) {
                    Some((_, wait)) => *wait,
                    None => {
                        let wait = self.take(client, *host, now);
                        decided.push((*host, wait));
                        wait
                    }
                };
                wait.map(|seconds| {
                    Detail::new(
                        (*target).into(),
                        Reason::Throttled,
                        format!(
                            "not tried: this caller's secrets for {} were rejected too often \
                             recently; try again in {seconds} s",
                            target.ip
                        ),
                    )
                })
            })
            .collect();
        Admitted {
            client: client.clone(),
            hosts,
            held,
        }
    }

    /// A token of `client` for `host`; `Some` with the seconds to wait
    /// when there is none.
    fn take(&self, client: &Client, host: IpAddr, now: Instant) -> Option<u64> {
        if self.limits.per_hour == 0 {
            return None;
        }
        self.with_bucket(client, host, now, |bucket| {
            let tokens = bucket.refill(now);
            if tokens >= 1.0 {
                bucket.spend();
                return None;
            }
            Some(((1.0 - tokens) / self.per_second()).ceil().max(1.0) as u64)
        })
    }

    /// Gives back the token of every host that judged no secret, and puts
    /// the held targets' details in place of what was not dialled. A call
    /// that ends without details (an error, or dropped) keeps its tokens:
    /// its secret may have been sent.
    pub fn conclude(
        &self,
        admitted: Admitted,
        targets: &[Target],
        details: Vec<Detail>,
        now: Instant,
    ) -> Vec<Detail> {
        let mut spent: Vec<IpAddr> = Vec::new();
        let mut dialled: Vec<IpAddr> = Vec::new();
        for ((host, held), detail) in admitted.hosts.iter().zip(&admitted.held).zip(&details) {
            if held.is_none() {
                if spends(detail.reason) && !spent.contains(host) {
                    spent.push(*host);
                }
                if !dialled.contains(host) {
                    dialled.push(*host);
                }
            }
        }
        if self.limits.per_hour != 0 {
            for host in dialled.iter().filter(|h| !spent.contains(h)) {
                self.with_bucket(&admitted.client, *host, now, Bucket::give_back);
            }
        }
        debug_assert_eq!(targets.len(), details.len());
        admitted
            .held
            .into_iter()
            .zip(details)
            .map(|(held, detail)| held.unwrap_or(detail))
            .collect()
    }

    fn with_bucket<R>(
        &self,
        client: &Client,
        host: IpAddr,
        now: Instant,
        f: impl FnOnce(&mut Bucket) -> R,
    ) -> R {
        // Buckets hold no invariant a panic elsewhere could break.
        let mut table = self
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (client.clone(), host);
        if let Some(bucket) = table.buckets.get_mut(&key) {
            return f(bucket);
        }
        let full = |table: &Table| {
            table.buckets.len() >= MAX_BUCKETS
                || table.per_caller.get(client).copied().unwrap_or(0) >= MAX_BUCKETS_PER_CALLER
        };
        if full(&table) {
            table.sweep(now);
        }
        let key = if full(&table) {
            (client.clone(), SHARED)
        } else {
            *table.per_caller.entry(client.clone()).or_default() += 1;
            key
        };
        let fresh = Bucket::full(f64::from(self.limits.burst.max(1)), self.per_second(), now);
        f(table.buckets.entry(key).or_insert(fresh))
    }
}

impl Table {
    /// Drops the buckets that have filled up again (they are as good as
    /// new), at most once a second: a full table costs no sweep per call.
    fn sweep(&mut self, now: Instant) {
        let recently = self
            .swept
            .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1));
        if recently {
            return;
        }
        let per_caller = &mut self.per_caller;
        self.buckets.retain(|(client, host), bucket| {
            let keep = !bucket.is_full_at(now);
            if !keep
                && *host != SHARED
                && let Some(n) = per_caller.get_mut(client)
            {
                *n -= 1;
            }
            keep
        });
        per_caller.retain(|_, n| *n > 0);
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

    fn limits(burst: u32, per_hour: u32) -> Guesses {
        Guesses::new(GuessLimits { burst, per_hour })
    }

    /// One request to `targets` by `client`, each target answering `reason`.
    fn request(
        guesses: &Guesses,
        client: &Client,
        targets: &[Target],
        reason: Reason,
        now: Instant,
    ) -> Vec<Detail> {
        let admitted = guesses.admit(client, targets, now);
        let details = targets
            .iter()
            .map(|t| Detail::new((*t).into(), reason, String::new()))
            .collect();
        guesses.conclude(admitted, targets, details, now)
    }

    fn reasons(details: &[Detail]) -> Vec<Reason> {
        details.iter().map(|d| d.reason).collect()
    }

    #[test]
    fn a_judged_secret_spends_and_everything_else_gives_back() {
        let guesses = limits(2, 3600);
        let (a, b) = (Client::new("a"), Client::new("b"));
        let targets = [target("192.0.2.1"), target("192.0.2.2")];
        let now = Instant::now();
        for reason in [
            Reason::Ok,
            Reason::Unreachable,
            Reason::Timeout,
            Reason::Refused,
            Reason::HostKeyMismatch,
        ] {
            let details = request(&guesses, &a, &targets, reason, now);
            assert_eq!(reasons(&details), [reason, reason]);
        }
        let only_first = [target("192.0.2.1")];
        for reason in [Reason::AuthFailed, Reason::ProtocolError] {
            request(&guesses, &a, &only_first, reason, now);
        }
        let details = request(&guesses, &a, &targets, Reason::Ok, now);
        assert_eq!(reasons(&details), [Reason::Throttled, Reason::Ok]);
        assert_eq!(details[0].target, Endpoint::from(targets[0]));
        assert_eq!(details[0].connection_result, "CONNECT_FAILED");
        assert!(
            details[0].message.contains("try again in 1 s"),
            "{details:?}"
        );
        // Another caller has its own; the first regains a token in time.
        let details = request(&guesses, &b, &targets, Reason::Ok, now);
        assert_eq!(reasons(&details), [Reason::Ok, Reason::Ok]);
        let later = now + Duration::from_secs(1);
        assert!(guesses.admit(&a, &targets, later).dial().iter().all(|d| *d));
    }

    #[test]
    fn one_host_is_one_allowance_however_it_is_addressed() {
        let guesses = limits(2, 1);
        let a = Client::new("a");
        let now = Instant::now();
        for same in [
            [
                "127.0.0.1",
                "127.9.9.9",
                "::1",
                "::ffff:127.0.0.3",
                "64:ff9b::7f00:2",
            ],
            [
                "2001:db8::1",
                "2001:db8::ffff:2",
                "2001:db8::3",
                "2001:db8::4",
                "2001:db8::5",
            ],
            [
                "192.0.2.7",
                "::ffff:192.0.2.7",
                "64:ff9b::c000:207",
                "192.0.2.7",
                "192.0.2.7",
            ],
        ] {
            let targets: Vec<Target> = same.iter().map(|ip| target(ip)).collect();
            // A request tries one secret: one token for all its targets.
            for _ in 0..2 {
                let details = request(&guesses, &a, &targets, Reason::AuthFailed, now);
                assert!(details.iter().all(|d| d.reason == Reason::AuthFailed));
            }
            let details = request(&guesses, &a, &targets, Reason::Ok, now);
            assert!(
                details.iter().all(|d| d.reason == Reason::Throttled),
                "{same:?}"
            );
        }
        // Another /64, another IPv4 address: other hosts.
        for other in ["2001:db8:0:1::1", "192.0.2.8"] {
            let details = request(&guesses, &a, &[target(other)], Reason::Ok, now);
            assert_eq!(reasons(&details), [Reason::Ok]);
        }
    }

    #[test]
    fn tokens_are_taken_before_the_login_and_kept_when_it_ends_without_verdicts() {
        let guesses = limits(3, 1);
        let a = Client::new("a");
        let one = [target("192.0.2.1")];
        let now = Instant::now();
        let in_flight: Vec<Admitted> = (0..3).map(|_| guesses.admit(&a, &one, now)).collect();
        assert!(in_flight.iter().all(Admitted::any));
        assert!(!guesses.admit(&a, &one, now).any());
        // Dropped (an error, or the request went away): its secret may have
        // been sent, so the token stays spent.
        drop(in_flight);
        assert!(!guesses.admit(&a, &one, now).any());
    }

    #[test]
    fn a_caller_flooding_the_table_shares_one_bucket_and_others_keep_theirs() {
        let guesses = limits(1, 1);
        let (flood, other) = (Client::new("flood"), Client::new("other"));
        let now = Instant::now();
        let host = |i: usize| target(&format!("10.{}.{}.1", i / 256, i % 256));
        for i in 0..MAX_BUCKETS_PER_CALLER {
            request(&guesses, &flood, &[host(i)], Reason::AuthFailed, now);
        }
        // Past its share, the flooder's new hosts share one bucket.
        let first_new = host(MAX_BUCKETS_PER_CALLER);
        request(&guesses, &flood, &[first_new], Reason::AuthFailed, now);
        let second_new = host(MAX_BUCKETS_PER_CALLER + 1);
        let details = request(&guesses, &flood, &[second_new], Reason::Ok, now);
        assert_eq!(reasons(&details), [Reason::Throttled]);
        let details = request(&guesses, &other, &[second_new], Reason::Ok, now);
        assert_eq!(reasons(&details), [Reason::Ok]);
    }

    #[test]
    fn no_limit_when_nothing_is_regained() {
        let guesses = limits(1, 0);
        let a = Client::new("a");
        let one = [target("192.0.2.1")];
        let now = Instant::now();
        for _ in 0..5 {
            let details = request(&guesses, &a, &one, Reason::AuthFailed, now);
            assert_eq!(reasons(&details), [Reason::AuthFailed]);
        }
    }
}
