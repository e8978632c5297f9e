//! How many records of requests nobody authenticated each client may add to
//! the audit log. Anyone who reaches the port can send such requests; with
//! a record each, a flood of them would rotate the log's oldest files away
//! (and with them the record of whatever came before). So each client (an
//! IPv4 address, an IPv6 /64) gets a burst, then one record a second; the
//! next record it gets says how many of its requests went unrecorded.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::connections::{Bucket, ClientTable};

/// Records a client may add at once, and how many it regains a second.
const BURST: f64 = 60.0;
const PER_SECOND: f64 = 1.0;
/// The same for all clients together, for each kind of request: many
/// addresses (an IPv6 /48 holds 65,536 /64s) must not add up to a flood
/// either, and junk from many must not spend what records attempts to get
/// in.
const ALL_BURST: f64 = 600.0;
const ALL_PER_SECOND: f64 = 20.0;
/// Clients tracked at once; past that, new ones share one allowance.
const MAX_CLIENTS: usize = 10_000;
/// A client not heard from for this long is forgotten, with the count of
/// its unrecorded requests: that it went quiet is recorded nowhere else.
const FORGOTTEN_AFTER: Duration = Duration::from_secs(600);

#[derive(Clone, Copy)]
struct Allowance {
    records: Bucket,
    unrecorded: u64,
}

impl Allowance {
    /// Whether it may go: whole again, or long quiet.
    fn spent(&self, now: Instant) -> bool {
        (self.unrecorded == 0 && self.records.is_full_at(now))
            || self.records.idle_for(now) >= FORGOTTEN_AFTER
    }
}

/// A client's allowances: one for requests refused by authentication, one
/// for the rest, so junk requests cannot spend the one that records
/// attempts to get in.
type Allowances = [Allowance; 2];

/// The clients' allowances, and those of all of them together (one per
/// kind, as a client's).
pub struct Unauthenticated(Mutex<(ClientTable<Allowances>, [Bucket; 2])>);

impl Default for Unauthenticated {
    fn default() -> Self {
        let all = Bucket::full(ALL_BURST, ALL_PER_SECOND, Instant::now());
        Self(Mutex::new((ClientTable::default(), [all; 2])))
    }
}

impl Unauthenticated {
    /// Whether a request of `peer`'s (refused by authentication, or not)
    /// gets a record, and if so how many of its kind since its last record
    /// got none.
    pub fn admit(&self, peer: IpAddr, refused: bool, now: Instant) -> Option<u64> {
        let mut guard = self.0.lock().expect("audit allowance lock");
        let (table, all) = &mut *guard;
        let fresh = Allowance {
            records: Bucket::full(BURST, PER_SECOND, now),
            unrecorded: 0,
        };
        let (_, allowances) = table.entry(
            peer,
            MAX_CLIENTS,
            now,
            |_, a| !a.iter().all(|a| a.spent(now)),
            || [fresh; 2],
        );
        let allowance = &mut allowances[usize::from(refused)];
        let all = &mut all[usize::from(refused)];
        let (own, shared) = (allowance.records.refill(now), all.refill(now));
        if own < 1.0 || shared < 1.0 {
            allowance.unrecorded += 1;
            // Counted here too: a count a client never comes back for (or
            // one shared by the clients of a full table) is seen this way.
            metrics::counter!("credhost_audit_unrecorded_total").increment(1);
            return None;
        }
        allowance.records.spend();
        all.spend();
        Some(std::mem::take(&mut allowance.unrecorded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_one_a_second_with_the_unrecorded_counted() {
        let table = Unauthenticated::default();
        let start = Instant::now();
        let flooder: IpAddr = "2001:db8::1".parse().unwrap();
        let neighbour: IpAddr = "2001:db8::2".parse().unwrap();
        for _ in 0..60 {
            assert_eq!(table.admit(flooder, false, start), Some(0));
        }
        for _ in 0..100 {
            assert_eq!(table.admit(flooder, false, start), None);
        }
        // The same /64 is the same client; another address is not.
        assert_eq!(table.admit(neighbour, false, start), None);
        assert_eq!(
            table.admit("192.0.2.7".parse().unwrap(), false, start),
            Some(0)
        );
        // Junk did not spend what records refusals by authentication.
        assert_eq!(table.admit(flooder, true, start), Some(0));
        let later = start + Duration::from_millis(1_500);
        assert_eq!(table.admit(flooder, false, later), Some(101));
        assert_eq!(table.admit(flooder, false, later), None);
    }

    #[test]
    fn the_table_stays_bounded() {
        let table = Unauthenticated::default();
        let now = Instant::now();
        for i in 0..(MAX_CLIENTS as u32 + 50) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            for _ in 0..61 {
                table.admit(ip, false, now);
            }
        }
        assert!(table.0.lock().unwrap().0.clients() <= MAX_CLIENTS + 1);
        // Ten quiet minutes later, a new client finds room again.
        let later = now + FORGOTTEN_AFTER;
        let newcomer: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(table.admit(newcomer, false, later), Some(0));
        assert!(table.0.lock().unwrap().0.clients() < 10);
    }

    #[test]
    fn many_clients_together_get_the_allowance_of_all() {
        let table = Unauthenticated::default();
        let now = Instant::now();
        let recorded = (0..100u32)
            .flat_map(|i| {
                std::iter::repeat_n(IpAddr::V4(std::net::Ipv4Addr::from(0xc000_0200 + i)), 60)
            })
            .filter(|ip| table.admit(*ip, false, now).is_some())
            .count();
        assert_eq!(recorded, ALL_BURST as usize);
        // Junk from all of them spent nothing of what records refusals.
        let refused: IpAddr = "198.51.100.9".parse().unwrap();
        assert_eq!(table.admit(refused, true, now), Some(0));
    }
}
