//! A header is accepted once. What identifies it is what nobody but its
//! author can make: the RSA blocks that hold the password. Blocks of one's
//! own can be appended to them or swapped for the others (to change `keys`,
//! the method, the body), and the remaining blocks re-encrypted (new bytes,
//! same text), but the password's blocks can only be reused as they are, so
//! any header rebuilt around them is the same header. Without a password
//! there is nothing to forge; such a header is identified by its `keys`
//! (drawn afresh for every request by the SDK) or else by all its claims.
//! Each identity is remembered until the header's expiry.
//!
//! Bounded and cheap: entries live in shards, each a map and a queue in
//! expiry order, so forgetting expired entries pops from the front of the
//! queue instead of scanning; only authenticated requests add entries, and
//! past `capacity` new headers are refused rather than memory grown.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

const SHARDS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Seen before, and not yet expired.
    Replayed,
    /// The cache holds `capacity` live headers already.
    Full,
}

#[derive(Default)]
struct Shard {
    expiry_of: HashMap<[u8; 32], u64>,
    by_expiry: BTreeMap<u64, Vec<[u8; 32]>>,
}

impl Shard {
    fn forget_expired(&mut self, now: u64) {
        while let Some(entry) = self.by_expiry.first_entry() {
            if *entry.key() >= now {
                break;
            }
            for id in entry.remove() {
                self.expiry_of.remove(&id);
            }
        }
    }
}

pub struct ReplayCache {
    shards: Vec<Mutex<Shard>>,
    capacity_per_shard: usize,
}

/// The identity of a header whose password lies in these ciphertext
/// blocks.
pub fn password_blocks<'a>(blocks: impl Iterator<Item = &'a [u8]>) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"blocks\0");
    for block in blocks {
        hash.update(block);
    }
    hash.finalize().into()
}

/// The identity of a header without a password.
pub fn identity(keys: Option<&str>, auth: &str, ts: Option<&str>, uri: Option<&str>) -> [u8; 32] {
    let mut hash = Sha256::new();
    match keys {
        Some(keys) => {
            hash.update(b"keys\0");
            hash.update(keys.trim().as_bytes());
        }
        None => {
            for part in [Some(auth), ts, uri] {
                let part = part.unwrap_or("");
                hash.update((part.len() as u64).to_be_bytes());
                hash.update(part.as_bytes());
            }
        }
    }
    hash.finalize().into()
}

impl ReplayCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            capacity_per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    /// Records `id` as used until `expiry` (Unix seconds), unless it was
    /// used before.
    pub fn first_use(&self, id: [u8; 32], expiry: u64, now: u64) -> Result<(), Refused> {
        let mut shard = self.shards[usize::from(id[0]) % SHARDS]
            .lock()
            .expect("replay cache lock");
        shard.forget_expired(now);
        if shard.expiry_of.contains_key(&id) {
            return Err(Refused::Replayed);
        }
        if shard.expiry_of.len() >= self.capacity_per_shard {
            return Err(Refused::Full);
        }
        shard.expiry_of.insert(id, expiry);
        shard.by_expiry.entry(expiry).or_default().push(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_is_accepted_once_until_it_expires() {
        let cache = ReplayCache::new(1000);
        let id = identity(Some("k"), "pw", Some("100"), Some("/a"));
        assert_eq!(cache.first_use(id, 100, 50), Ok(()));
        assert_eq!(cache.first_use(id, 100, 60), Err(Refused::Replayed));
        // Past its expiry it is forgotten (and the header itself is refused
        // as expired before it gets here).
        assert_eq!(cache.first_use(id, 200, 101), Ok(()));
    }

    #[test]
    fn the_same_keys_is_the_same_header_whatever_else_changed() {
        let a = identity(Some("k"), "pw", Some("100"), Some("/a"));
        let b = identity(Some("k"), "pw", Some("200"), Some("/b"));
        assert_eq!(a, b);
        let c = identity(None, "pw", Some("100"), Some("/a"));
        let d = identity(None, "pw", Some("100"), Some("/b"));
        assert_ne!(c, d);
    }

    #[test]
    fn refuses_rather_than_grows() {
        let cache = ReplayCache::new(16);
        let mut refused = 0;
        for n in 0..200u32 {
            let id = identity(Some(&n.to_string()), "", None, None);
            if cache.first_use(id, 1000, 1) == Err(Refused::Full) {
                refused += 1;
            }
        }
        assert!(refused > 0);
        // Once expired, room again.
        let id = identity(Some("later"), "", None, None);
        assert_eq!(cache.first_use(id, 5000, 2000), Ok(()));
    }
}
