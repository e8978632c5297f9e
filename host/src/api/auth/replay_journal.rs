//! The replay cache outlives the process. Each header identity accepted is
//! appended, with its expiry, to a file in the data directory, and a server
//! that starts loads the ones still live: a header captured before a
//! restart or a crash is refused after it, as it was before. (A shared
//! store keeps its own record, across servers.)
//!
//! Appends go through a thread of their own, without `fsync`: a request
//! never waits on the disk, and what was written survives the process, if
//! not the machine. A server that stops writes out what is queued and
//! syncs the file before it exits. The file is rewritten with only live
//! entries when it starts and whenever it has grown by `COMPACT_EVERY`
//! entries.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, channel, sync_channel};
use std::time::Duration;

use super::replay::ReplayCache;

/// An entry: the identity, then its expiry (Unix seconds, big-endian).
const ENTRY: usize = 40;
/// Entries waiting for the writer; past that they are dropped and counted.
const QUEUE: usize = 65_536;
const COMPACT_EVERY: usize = 200_000;

pub struct ReplayJournal {
    queue: SyncSender<Message>,
}

enum Message {
    Entry([u8; ENTRY]),
    /// Answered once every entry sent before it is written and synced.
    Flush(std::sync::mpsc::Sender<()>),
}

impl ReplayJournal {
    /// Loads the live entries of `path` into `cache`, rewrites the file
    /// with only those, and starts the writer. No header lives longer than
    /// `horizon` seconds: an entry said to (a damaged file) is dropped.
    pub fn open(path: &Path, cache: &ReplayCache, now: u64, horizon: u64) -> std::io::Result<Self> {
        let live = live_entries(path, now, horizon)?;
        for entry in live.chunks_exact(ENTRY) {
            let (id, expiry) = split(entry);
            // Full or seen twice: nothing more to learn from it.
            let _ = cache.first_use(id, expiry, now);
        }
        crate::keys::write_private(path, &live)?;
        let file = append_to(path)?;
        let (queue, entries) = sync_channel(QUEUE);
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("replay-journal".into())
            .spawn(move || write_entries(&path, file, &entries, horizon))?;
        Ok(Self { queue })
    }

    /// Records that `id` is used until `expiry`.
    pub fn note(&self, id: [u8; 32], expiry: u64) {
        let mut entry = [0u8; ENTRY];
        entry[..32].copy_from_slice(&id);
        entry[32..].copy_from_slice(&expiry.to_be_bytes());
        if let Err(TrySendError::Full(_)) = self.queue.try_send(Message::Entry(entry)) {
            metrics::counter!("credhost_replay_journal_dropped_total").increment(1);
        }
    }

    /// Waits (up to `within`) until every header noted so far is written
    /// and synced: a server that stops calls it last, so a header accepted
    /// just before is still refused after the restart.
    pub fn flush(&self, within: Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        let (done, written) = channel();
        let mut flush = Message::Flush(done);
        // Never blocked on a full queue: a writer stuck on the disk must
        // not keep the server from stopping.
        loop {
            match self.queue.try_send(flush) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if std::time::Instant::now() < deadline => {
                    flush = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return false,
            }
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        written.recv_timeout(left).is_ok()
    }
}

/// How far ahead an entry may expire before it is taken for damage: well
/// past the horizon, since a server may restart with a shorter one, or
/// with its clock behind, and must still know the headers it accepted.
fn ceiling(horizon: u64) -> u64 {
    horizon.max(7 * 24 * 3600)
}

fn split(entry: &[u8]) -> ([u8; 32], u64) {
    let id = entry[..32].try_into().expect("an entry holds an id");
    let expiry = u64::from_be_bytes(entry[32..].try_into().expect("and an expiry"));
    (id, expiry)
}

/// The entries of `path` not yet expired and not said to live past the
/// horizon (none if there is no file; a torn last entry is left out).
fn live_entries(path: &Path, now: u64, horizon: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut file) => {
            file.read_to_end(&mut bytes)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(bytes
        .chunks_exact(ENTRY)
        .filter(|entry| (now..=now.saturating_add(ceiling(horizon))).contains(&split(entry).1))
        .flatten()
        .copied()
        .collect())
}

fn append_to(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

fn write_entries(path: &Path, mut file: File, entries: &Receiver<Message>, horizon: u64) {
    let mut since_compaction = 0;
    while let Ok(message) = entries.recv() {
        let entry = match message {
            Message::Entry(entry) => entry,
            Message::Flush(done) => {
                if let Err(e) = file.sync_data() {
                    tracing::warn!(path = %path.display(), "cannot sync: {e}");
                }
                let _ = done.send(());
                continue;
            }
        };
        if let Err(e) = file.write_all(&entry) {
            tracing::warn!(path = %path.display(), "cannot record a header against replay: {e}");
            // Part of it may be there: cut back to whole entries, or every
            // later one would be read askew.
            if let Ok(length) = file.metadata().map(|m| m.len()) {
                let _ = file.set_len(length - length % ENTRY as u64);
            }
            continue;
        }
        since_compaction += 1;
        if since_compaction < COMPACT_EVERY {
            continue;
        }
        since_compaction = 0;
        let compacted = live_entries(path, crate::clock::now_us() as u64 / 1_000_000, horizon)
            .and_then(|live| crate::keys::write_private(path, &live))
            .and_then(|()| append_to(path));
        match compacted {
            Ok(fresh) => file = fresh,
            Err(e) => tracing::warn!(path = %path.display(), "cannot compact: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_entries_come_back_and_expired_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay.journal");
        let cache = ReplayCache::new(1_000);
        let journal = ReplayJournal::open(&path, &cache, 100, 3_600).unwrap();
        journal.note([1; 32], 150);
        journal.note([2; 32], 120);
        // Said to live far longer than any header may (a damaged entry).
        journal.note([3; 32], 100_000_000);
        drop(journal);
        // The writer ends once its queue is dropped and drained.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::metadata(&path).unwrap().len() < 3 * ENTRY as u64 {
            assert!(std::time::Instant::now() < deadline, "not written");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // A torn entry at the end (a crash mid-write) is left out.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&[9; 17])
            .unwrap();
        let after = ReplayCache::new(1_000);
        let _journal = ReplayJournal::open(&path, &after, 130, 3_600).unwrap();
        assert_eq!(
            after.first_use([1; 32], 150, 130),
            Err(super::super::replay::Refused::Replayed)
        );
        assert_eq!(after.first_use([2; 32], 120, 130), Ok(()));
        assert_eq!(after.first_use([3; 32], 100_000_000, 130), Ok(()));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), ENTRY as u64);
    }

    #[test]
    fn a_flush_returns_once_every_noted_header_is_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay.journal");
        let cache = ReplayCache::new(1_000);
        let journal = ReplayJournal::open(&path, &cache, 100, 3_600).unwrap();
        let noted = 20_000u64;
        for i in 0..noted {
            let mut id = [0; 32];
            id[..8].copy_from_slice(&i.to_be_bytes());
            journal.note(id, 200);
        }
        assert!(journal.flush(Duration::from_secs(10)));
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            noted * ENTRY as u64
        );
    }
}
