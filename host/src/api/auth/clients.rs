//! Per client address: how many authentication failures it may still make
//! (a token bucket), and how many of its headers are being decrypted now.
//! An address is an IPv4 address or an IPv6 /64, the least a client
//! controls. The table is bounded: when full, idle entries are dropped, and
//! if none is idle the newcomers share one entry.

use crate::connections::{Bucket, ClientTable};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct ClientLimits {
    /// Failures allowed at once before the address is slowed down.
    pub failure_burst: u32,
    /// Failures regained per minute.
    pub failures_per_minute: u32,
    /// Headers of one address decrypted at once.
    pub in_flight: u32,
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            // As many as `in_flight`: an address has no more headers in
            // flight than failures left, and one that never failed keeps
            // the concurrency it always had.
            failure_burst: 16,
            failures_per_minute: 60,
            in_flight: 16,
        }
    }
}

const MAX_ENTRIES: usize = 65_536;

/// Why an address is turned away before any decryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many failures lately; try again after this many seconds.
    Failures { retry_after: u64 },
    /// Too many of its headers are being decrypted now.
    Busy,
}

#[derive(Debug)]
struct Entry {
    /// Failures still allowed.
    failures: Bucket,
    in_flight: u32,
}

pub struct Clients {
    limits: ClientLimits,
    entries: Mutex<ClientTable<Entry>>,
}

/// An address's header being decrypted; dropping it ends that.
pub struct Ticket {
    clients: Arc<Clients>,
    key: IpAddr,
    /// Set when the request failed authentication.
    failed: bool,
}

impl Ticket {
    pub fn failed(&mut self) {
        self.failed = true;
    }

    /// Whether this address has failed lately (its requests then queue
    /// behind those of addresses that have not). The failures its attempts
    /// in flight hold are not counted: they are not failures yet.
    pub fn suspect(&self) -> bool {
        let entries = self.clients.entries.lock().expect("client table lock");
        entries.get(&self.key).is_some_and(|e| {
            e.failures.tokens() + f64::from(e.in_flight)
                < f64::from(self.clients.limits.failure_burst)
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut entries = self.clients.entries.lock().expect("client table lock");
        if let Some(entry) = entries.get_mut(&self.key) {
            entry.in_flight = entry.in_flight.saturating_sub(1);
            // The failure it held since its admission is spent if it
            // failed, and given back if not.
            if !self.failed {
                entry.failures.give_back();
            }
        }
    }
}

impl Clients {
    pub fn new(limits: ClientLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            entries: Mutex::default(),
        })
    }

    /// Admits one header of `ip` for decryption, or says why not. Each
    /// attempt holds one of the address's failures while it is decided:
    /// counted only as it ended, a failure let an address with one left
    /// have as many attempts in flight as it liked, every one of which
    /// could fail.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, Refusal> {
        let now = Instant::now();
        let burst = f64::from(self.limits.failure_burst.max(1));
        let per_second = f64::from(self.limits.failures_per_minute) / 60.0;
        let mut entries = self.entries.lock().expect("client table lock");
        let (key, entry) = entries.entry(
            ip,
            MAX_ENTRIES,
            now,
            |_, e| e.in_flight > 0 || !e.failures.is_full_at(now),
            || Entry {
                failures: Bucket::full(burst, per_second, now),
                in_flight: 0,
            },
        );
        let allowed = entry.failures.refill(now);
        // What its attempts in flight hold may come back: while they are
        // decided, the address is busy, not refused for failing.
        let unheld = allowed + f64::from(entry.in_flight);
        if unheld < 1.0 {
            let wait = if per_second > 0.0 {
                ((1.0 - unheld) / per_second).ceil() as u64
            } else {
                60
            };
            return Err(Refusal::Failures {
                retry_after: wait.max(1),
            });
        }
        if allowed < 1.0 || entry.in_flight >= self.limits.in_flight.max(1) {
            return Err(Refusal::Busy);
        }
        entry.failures.spend();
        entry.in_flight += 1;
        Ok(Ticket {
            clients: self.clone(),
            key,
            failed: false,
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap().clients()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(burst: u32, per_minute: u32, in_flight: u32) -> ClientLimits {
        ClientLimits {
            failure_burst: burst,
            failures_per_minute: per_minute,
            in_flight,
        }
    }

    #[test]
    fn failures_drain_the_bucket_successes_do_not() {
        let clients = Clients::new(limits(3, 0, 10));
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        for _ in 0..10 {
            drop(clients.admit(ip).unwrap());
        }
        for _ in 0..3 {
            clients.admit(ip).unwrap().failed();
        }
        assert!(matches!(clients.admit(ip), Err(Refusal::Failures { .. })));
        // Another address is not affected.
        assert!(clients.admit("127.0.0.10".parse().unwrap()).is_ok());
    }

    #[test]
    fn an_address_has_no_more_attempts_in_flight_than_failures_left() {
        let clients = Clients::new(limits(2, 0, 16));
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let first = clients.admit(ip).unwrap();
        let second = clients.admit(ip).unwrap();
        // Both may still fail: a third is not let in, as busy.
        assert_eq!(clients.admit(ip).err(), Some(Refusal::Busy));
        drop(first);
        // A success gives its failure back.
        let mut third = clients.admit(ip).unwrap();
        third.failed();
        drop(third);
        let mut second = second;
        second.failed();
        drop(second);
        assert!(matches!(clients.admit(ip), Err(Refusal::Failures { .. })));
    }

    #[test]
    fn an_attempt_in_flight_does_not_make_an_address_suspect() {
        let clients = Clients::new(limits(3, 0, 16));
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let first = clients.admit(ip).unwrap();
        let second = clients.admit(ip).unwrap();
        assert!(!first.suspect() && !second.suspect());
        let mut failed = first;
        failed.failed();
        drop(failed);
        assert!(second.suspect());
    }

    #[test]
    fn in_flight_is_capped_per_address() {
        let clients = Clients::new(limits(3, 60, 2));
        let ip: IpAddr = "::1".parse().unwrap();
        let a = clients.admit(ip).unwrap();
        let _b = clients.admit(ip).unwrap();
        assert_eq!(clients.admit(ip).err(), Some(Refusal::Busy));
        drop(a);
        assert!(clients.admit(ip).is_ok());
    }

    #[test]
    fn an_ipv6_slash_64_is_one_client() {
        let clients = Clients::new(limits(1, 0, 10));
        clients
            .admit("2001:db8::1".parse().unwrap())
            .unwrap()
            .failed();
        assert!(clients.admit("2001:db8::ffff".parse().unwrap()).is_err());
        assert!(clients.admit("2001:db8:0:1::1".parse().unwrap()).is_ok());
        assert_eq!(clients.len(), 2);
    }
}
