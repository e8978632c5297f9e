//! How many secrets of one caller the hosts may judge wrong. Every login
//! credhost makes for a caller (create, update, validate, batch validate)
//! tries a secret the caller chose, or a stored one with what the caller
//! changed: for all the host knows, a password guess, from an address it
//! trusts enough to let it try. Unbounded, credhost would be a fast
//! password guesser against every host the operator allows, and the hosts'
//! own defences (fail2ban, account lockout) would ban credhost itself, for
//! everyone.
//!
//! So each caller has a bucket per host address, and one ten times as large
//! per network (all of loopback, each IPv6 /64). A request tries one
//! secret, so it takes one token per host it reaches, before any login
//! starts (which bounds concurrent guesses too), and gets it back unless a
//! verdict shows the secret judged, or maybe sent (`AUTH_FAILED`,
//! `PROTOCOL_ERROR`, `OTHER`). A host without a token is not dialled for
//! that caller (`THROTTLED`) until the bucket has regained one. Another
//! caller has its own buckets, so one caller's failures do not lock others
//! out.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::budget::Client;
use crate::connections::{Bucket, client_of};
use crate::plugins::{Detail, Reason, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Targets of one host a request may reach: a host's own addresses and
/// ports, or the machines of one IPv6 /64. Past that, a token would buy
/// hundreds of failed logins at one machine (its fail2ban would ban
/// credhost for everyone, its lockout lock the account).
const MAX_TARGETS_PER_HOST: usize = 64;

/// What costs the token: the target judged the secret, or may have (a
/// plugin that failed after sending it). The rest shows the secret was
/// accepted or never sent.
fn spends(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::AuthFailed | Reason::ProtocolError | Reason::Other
    )
}

/// The host a target address names: the address, except that one under
/// NAT64's well-known prefix is the IPv4 address it carries.
fn host_of(ip: IpAddr) -> IpAddr {
    let ip = ip.to_canonical();
    super::targets::nat64_ipv4(ip).map_or(ip, IpAddr::V4)
}

/// The network a host shares an allowance with, ten times as large as its
/// own: all of loopback, which is this machine, and an IPv6 /64, whose
/// machines are a LAN's, or one machine answering on all of it. Otherwise
/// one machine would be as many hosts as it has addresses.
fn network_of(host: IpAddr) -> Option<IpAddr> {
    match host {
        _ if host.is_loopback() => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        IpAddr::V6(_) => Some(client_of(host)),
        IpAddr::V4(_) => None,
    }
}

/// How much larger a network's allowance is than an address's.
const NETWORK_FACTOR: u32 = 10;

/// Where a caller's allowance is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Slot {
    Host(IpAddr),
    Network(IpAddr),
    /// The caller's hosts and networks past its share of the table.
    Shared,
}

pub struct Guesses {
    limits: GuessLimits,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    buckets: HashMap<(Client, Slot), Bucket>,
    /// Each caller's buckets, its shared one left out.
    per_caller: HashMap<Client, usize>,
    swept: Option<Instant>,
}

/// What a request may reach now. A request tries one secret, so it takes
/// one token per host, however many of its targets are that host's.
pub struct Admitted {
    client: Client,
    /// Each host reached, and the slots its tokens came from (none
    /// without a limit).
    hosts: Vec<Vec<Slot>>,
    /// Per target: `Reach::Dial`, a copy of an earlier identical target,
    /// or held.
    reach: Vec<Reach>,
}

enum Reach {
    /// Dialled, its token from `hosts[i]`.
    Dial(usize),
    /// The same endpoint as an earlier target: dialled once, for both.
    Copy(usize),
    Held(Detail),
}

impl Admitted {
    pub fn dial(&self) -> Vec<bool> {
        self.reach
            .iter()
            .map(|r| matches!(r, Reach::Dial(_)))
            .collect()
    }

    pub fn any(&self) -> bool {
        self.reach.iter().any(|r| matches!(r, Reach::Dial(_)))
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
        let mut hosts: Vec<Vec<Slot>> = Vec::new();
        // Per host: its token (or the seconds to wait) and targets dialled.
        let mut decided: HashMap<IpAddr, (Result<usize, u64>, usize)> = HashMap::new();
        let mut first_of: HashMap<&Target, usize> = HashMap::with_capacity(targets.len());
        let mut reach = Vec::with_capacity(targets.len());
        for (i, target) in targets.iter().enumerate() {
            if let Some(&first) = first_of.get(target) {
                reach.push(Reach::Copy(first));
                continue;
            }
            first_of.insert(target, i);
            let host = host_of(target.ip);
            let (token, dialled) = decided.entry(host).or_insert_with(|| {
                let token = self.take(client, host, now).map(|slots| {
                    hosts.push(slots);
                    hosts.len() - 1
                });
                (token, 0)
            });
            let why = match *token {
                Err(seconds) => format!(
                    "not tried: this caller's secrets for {} were judged wrong too often \
                     recently; try again in {seconds} s",
                    target.ip
                ),
                Ok(_) if *dialled >= MAX_TARGETS_PER_HOST => format!(
                    "not tried: a request reaches at most {MAX_TARGETS_PER_HOST} targets of \
                     one host ({host} here)"
                ),
                Ok(index) => {
                    *dialled += 1;
                    reach.push(Reach::Dial(index));
                    continue;
                }
            };
            reach.push(Reach::Held(Detail::new(
                (*target).into(),
                Reason::Throttled,
                why,
            )));
        }
        Admitted {
            client: client.clone(),
            hosts,
            reach,
        }
    }

    /// A token of `client` for `host` (and for its /64), and the slots
    /// they came from; `Err` with the seconds to wait when there is none.
    fn take(&self, client: &Client, host: IpAddr, now: Instant) -> Result<Vec<Slot>, u64> {
        if self.limits.per_hour == 0 {
            return Ok(Vec::new());
        }
        let mut table = self.table();
        let mut taken = Vec::with_capacity(2);
        let wanted = std::iter::once((Slot::Host(host), 1))
            .chain(network_of(host).map(|net| (Slot::Network(net), NETWORK_FACTOR)));
        for (own, factor) in wanted {
            let slot = table.slot(client, own, now);
            let burst = f64::from(self.limits.burst.max(1).saturating_mul(factor));
            let rate = self.per_second() * f64::from(factor);
            let bucket = (table.buckets.entry((client.clone(), slot)))
                .or_insert_with(|| Bucket::full(burst, rate, now));
            let tokens = bucket.refill(now);
            if tokens < 1.0 {
                let wait = ((1.0 - tokens) / rate).ceil().max(1.0) as u64;
                table.give_back(client, &taken);
                return Err(wait);
            }
            bucket.spend();
            taken.push(slot);
        }
        Ok(taken)
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // Buckets hold no invariant a panic elsewhere could break.
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Gives back every token of a request that dialled nothing (refused
    /// for want of an instance before any call started).
    pub fn release(&self, admitted: Admitted) {
        let mut table = self.table();
        for slots in &admitted.hosts {
            table.give_back(&admitted.client, slots);
        }
    }

    /// Gives back the token of every host no verdict of which spends it,
    /// and puts the held and copied targets' details in place of what was
    /// not dialled. A call that ends without details (an error, or
    /// dropped) keeps its tokens: its secret may have been sent.
    pub fn conclude(&self, admitted: Admitted, details: Vec<Detail>) -> Vec<Detail> {
        if details.len() != admitted.reach.len() {
            // Not a verdict per target: nothing to say which were judged.
            return details;
        }
        let mut spent = vec![false; admitted.hosts.len()];
        for (reach, detail) in admitted.reach.iter().zip(&details) {
            if let Reach::Dial(host) = reach {
                spent[*host] |= spends(detail.reason);
            }
        }
        {
            let mut table = self.table();
            for (slots, spent) in admitted.hosts.iter().zip(spent) {
                if !spent {
                    table.give_back(&admitted.client, slots);
                }
            }
        }
        let mut out: Vec<Detail> = Vec::with_capacity(details.len());
        for (reach, detail) in admitted.reach.into_iter().zip(details) {
            let detail = match reach {
                Reach::Dial(_) => detail,
                Reach::Copy(first) => out[first].clone(),
                Reach::Held(held) => held,
            };
            out.push(detail);
        }
        out
    }
}

impl Table {
    /// Gives back a token to each of `slots`; only to a bucket still
    /// there (one swept meanwhile was full).
    fn give_back(&mut self, client: &Client, slots: &[Slot]) {
        for slot in slots {
            if let Some(bucket) = self.buckets.get_mut(&(client.clone(), *slot)) {
                bucket.give_back();
            }
        }
    }

    /// Where `client`'s allowance `own` is kept: there, or, past the
    /// caller's share or the table's size, in the caller's shared one.
    fn slot(&mut self, client: &Client, own: Slot, now: Instant) -> Slot {
        if self.buckets.contains_key(&(client.clone(), own)) {
            return own;
        }
        let full = |table: &Table| {
            table.buckets.len() >= MAX_BUCKETS
                || table.per_caller.get(client).copied().unwrap_or(0) >= MAX_BUCKETS_PER_CALLER
        };
        if full(self) {
            self.sweep(now);
        }
        if full(self) {
            return Slot::Shared;
        }
        *self.per_caller.entry(client.clone()).or_default() += 1;
        own
    }

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
        self.buckets.retain(|(client, slot), bucket| {
            let keep = !bucket.is_full_at(now);
            if !keep
                && *slot != Slot::Shared
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
        let dial = admitted.dial();
        let details = targets
            .iter()
            .zip(dial)
            .map(|(t, dial)| {
                let reason = if dial { reason } else { Reason::NotGranted };
                Detail::new((*t).into(), reason, String::new())
            })
            .collect();
        guesses.conclude(admitted, details)
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
        for reason in [Reason::AuthFailed, Reason::Other] {
            request(&guesses, &a, &only_first, reason, now);
        }
        let details = request(&guesses, &a, &targets, Reason::Ok, now);
        assert_eq!(reasons(&details), [Reason::Throttled, Reason::Ok]);
        assert_eq!(details[0].target, Endpoint::from(targets[0]));
        assert_eq!(details[0].connection_result, "CONNECT_FAILED");
        assert!(
            details[0].message.contains("judged wrong too often"),
            "{details:?}"
        );
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
                "127.0.0.3",
                "::ffff:127.0.0.3",
                "64:ff9b::7f00:3",
                "127.0.0.3",
                "127.0.0.3",
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
        // Another address: another host.
        for other in ["2001:db8:0:1::1", "2001:db8:0:1::2", "192.0.2.8"] {
            let details = request(&guesses, &a, &[target(other)], Reason::Ok, now);
            assert_eq!(reasons(&details), [Reason::Ok]);
        }
    }

    #[test]
    fn loopback_is_one_network() {
        let guesses = limits(1, 1);
        let a = Client::new("a");
        let now = Instant::now();
        let many: Vec<Target> = (1..=15)
            .map(|i| target(&format!("127.0.{i}.1")))
            .chain([target("::1")])
            .collect();
        let dial = guesses.admit(&a, &many, now).dial();
        assert_eq!(dial.iter().filter(|d| **d).count(), 10);
    }

    #[test]
    fn an_ipv6_64_has_ten_addresses_worth() {
        let guesses = limits(1, 1);
        let a = Client::new("a");
        let now = Instant::now();
        let in_64 = |i: u32| target(&format!("2001:db8::{i:x}"));
        // Ten machines of one LAN each judge a secret wrong...
        for i in 1..=10 {
            let details = request(&guesses, &a, &[in_64(i)], Reason::AuthFailed, now);
            assert_eq!(reasons(&details), [Reason::AuthFailed]);
        }
        // ...and the /64 is held for this caller, its other machines too.
        let details = request(&guesses, &a, &[in_64(11)], Reason::Ok, now);
        assert_eq!(reasons(&details), [Reason::Throttled]);
        let details = request(&guesses, &a, &[target("2001:db8:0:1::1")], Reason::Ok, now);
        assert_eq!(reasons(&details), [Reason::Ok]);
        // One request to fifteen machines of a fresh /64 reaches ten.
        let lan: Vec<Target> = (1..=15)
            .map(|i| target(&format!("2001:db8:1::{i:x}")))
            .collect();
        let dial = guesses.admit(&Client::new("b"), &lan, now).dial();
        assert_eq!(dial.iter().filter(|d| **d).count(), 10);
    }

    #[test]
    fn a_target_sent_twice_is_dialled_once_and_one_host_at_most_64_times() {
        let guesses = limits(1, 1);
        let a = Client::new("a");
        let now = Instant::now();
        let twice = [
            target("192.0.2.1"),
            target("192.0.2.2"),
            target("192.0.2.1"),
        ];
        let admitted = guesses.admit(&a, &twice, now);
        assert_eq!(admitted.dial(), [true, true, false]);
        let details = vec![
            Detail::new(twice[0].into(), Reason::Ok, "first".into()),
            Detail::new(twice[1].into(), Reason::Refused, String::new()),
            Detail::new(twice[2].into(), Reason::NotGranted, String::new()),
        ];
        let details = guesses.conclude(admitted, details);
        assert_eq!(reasons(&details), [Reason::Ok, Reason::Refused, Reason::Ok]);
        assert_eq!(details[2].message, "first");
        // 100 ports of one machine: one token, 64 of them dialled.
        let ports: Vec<Target> = (1..=100)
            .map(|port| Target {
                ip: "127.0.0.1".parse().unwrap(),
                port,
            })
            .collect();
        let dial = guesses.admit(&Client::new("b"), &ports, now).dial();
        assert_eq!(dial.iter().filter(|d| **d).count(), MAX_TARGETS_PER_HOST);
        assert!(dial[..MAX_TARGETS_PER_HOST].iter().all(|d| *d));
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
    fn a_request_that_dialled_nothing_gives_every_token_back() {
        let guesses = limits(1, 1);
        let a = Client::new("a");
        let two = [target("192.0.2.1"), target("2001:db8::1")];
        let now = Instant::now();
        let refused = guesses.admit(&a, &two, now);
        assert!(!guesses.admit(&a, &two, now).any());
        guesses.release(refused);
        assert_eq!(guesses.admit(&a, &two, now).dial(), [true, true]);
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
