//! How many records of requests nobody authenticated each client may add to
//! the audit log. Anyone who reaches the port can send such requests; with
//! a record each, a flood of them would rotate the log's oldest files away
//! (and with them the record of whatever came before). So each client (an
//! IPv4 address, an IPv6 /64) gets a burst, then one record a second; the
//! next record it gets says how many of its requests went unrecorded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Records a client may add at once, and how many it regains a second.
const BURST: f64 = 60.0;
const PER_SECOND: f64 = 1.0;
/// Clients tracked at once; past that, new ones share one allowance.
const MAX_CLIENTS: usize = 10_000;

struct Allowance {
    records: f64,
    updated: Instant,
    unrecorded: u64,
}

#[derive(Default)]
pub struct Unauthenticated(Mutex<HashMap<IpAddr, Allowance>>);

impl Unauthenticated {
    /// Whether a request of `peer`'s gets a record, and if so how many of
    /// its requests since its last record got none.
    pub fn admit(&self, peer: IpAddr, now: Instant) -> Option<u64> {
        let mut table = self.0.lock().expect("audit allowance lock");
        // A client whose allowance is whole again is as if unknown.
        let client = crate::connections::table_key(&mut table, peer, MAX_CLIENTS, |_, a| {
            a.unrecorded > 0 || regained(a, now) < BURST
        });
        let allowance = table.entry(client).or_insert(Allowance {
            records: BURST,
            updated: now,
            unrecorded: 0,
        });
        allowance.records = regained(allowance, now);
        allowance.updated = now;
        if allowance.records < 1.0 {
            allowance.unrecorded += 1;
            return None;
        }
        allowance.records -= 1.0;
        Some(std::mem::take(&mut allowance.unrecorded))
    }
}

fn regained(allowance: &Allowance, now: Instant) -> f64 {
    let seconds = now
        .saturating_duration_since(allowance.updated)
        .as_secs_f64();
    (allowance.records + seconds * PER_SECOND).min(BURST)
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
            assert_eq!(table.admit(flooder, start), Some(0));
        }
        for _ in 0..100 {
            assert_eq!(table.admit(flooder, start), None);
        }
        // The same /64 is the same client; another address is not.
        assert_eq!(table.admit(neighbour, start), None);
        assert_eq!(table.admit("192.0.2.7".parse().unwrap(), start), Some(0));
        let later = start + Duration::from_millis(1_500);
        assert_eq!(table.admit(flooder, later), Some(101));
        assert_eq!(table.admit(flooder, later), None);
    }

    #[test]
    fn the_table_stays_bounded() {
        let table = Unauthenticated::default();
        let now = Instant::now();
        for i in 0..(MAX_CLIENTS as u32 + 50) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            for _ in 0..61 {
                table.admit(ip, now);
            }
        }
        assert!(table.0.lock().unwrap().len() <= MAX_CLIENTS + 1);
    }
}
