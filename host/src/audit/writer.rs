//! The thread that owns the audit file: it numbers records, chains them,
//! writes each batch with one system call, rotates by size and reopens on
//! request (logrotate's SIGHUP). A batch that cannot be written is cut off
//! again, so the file never keeps half a line, and whoever waits for it is
//! told.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use super::chain::Keys;

/// Lines kept in memory for `GET /api/v1/audit`.
pub const RECENT: usize = 10_000;

pub enum Command {
    /// A record's JSON object, without its `seq` and `mac`.
    Append {
        body: String,
        /// Told whether the record reached the file (and the disk).
        ack: Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
    },
    Reopen,
}

impl Command {
    /// Whether someone waits for it to reach the disk.
    pub fn awaited(&self) -> bool {
        matches!(self, Command::Append { ack: Some(_), .. })
    }
}

pub struct Writer {
    pub path: PathBuf,
    pub max_bytes: u64,
    pub keep: usize,
    pub keys: Keys,
    pub recent: Arc<Mutex<VecDeque<String>>>,
    pub healthy: Arc<AtomicBool>,
    file: Option<File>,
    size: u64,
    seq: u64,
    prev: String,
}

/// The MAC and sequence number of the last whole line of `path`, cutting
/// off a partial last line (a crash mid-write) first.
fn resume_from(path: &Path) -> std::io::Result<Option<(u64, String)>> {
    // Never through a link: whoever can write the log's directory could
    // point the path at a file of the server's (its KEK, its store), which
    // the cut below would shorten.
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    let mut file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(std::io::Error::other(format!(
                "{} is a symbolic link: the audit log is not written through one",
                path.display()
            )));
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        // A device (say /dev/null) has no chain to carry on.
        return Ok(None);
    }
    // A hard link is another name of some file: perhaps one of the
    // server's own, which the cut below would shorten.
    if std::os::unix::fs::MetadataExt::nlink(&meta) > 1 {
        return Err(std::io::Error::other(format!(
            "{} has other names (hard links): the audit log is a file of its own",
            path.display()
        )));
    }
    let len = meta.len();
    let tail_len = len.min(1 << 20);
    file.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = Vec::with_capacity(tail_len as usize);
    (&mut file).take(tail_len).read_to_end(&mut tail)?;
    let keep = tail.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if keep < tail.len() {
        file.set_len(len - tail_len + keep as u64)?;
    }
    let text = String::from_utf8_lossy(&tail[..keep]);
    let Some(last) = text.lines().last() else {
        return Ok(None);
    };
    let (body, mac) = super::chain::split(last).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the last line of {} carries no MAC", path.display()),
        )
    })?;
    let seq = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["seq"].as_u64())
        .unwrap_or(0);
    Ok(Some((seq, mac)))
}

/// Enough of a MAC to compare the chain's head with a copy of it.
fn head(mac: &str) -> &str {
    &mac[..mac.len().min(16)]
}

fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

impl Writer {
    pub fn new(
        path: PathBuf,
        max_bytes: u64,
        keep: usize,
        keys: Keys,
        recent: Arc<Mutex<VecDeque<String>>>,
        healthy: Arc<AtomicBool>,
    ) -> std::io::Result<Self> {
        // Carry the chain on from the current file, or from the one a
        // rotation left behind it.
        let (seq, prev) = match resume_from(&path)? {
            Some(found) => found,
            None => resume_from(&rotated(&path, 1))?.unwrap_or((0, String::new())),
        };
        // Written to the server's own log as well: a copy of the chain's
        // head outside the file, against which a log cut short shows.
        tracing::info!(seq, head = %head(&prev), "audit chain carries on");
        let mut writer = Self {
            path,
            max_bytes,
            keep,
            keys,
            recent,
            healthy,
            file: None,
            size: 0,
            seq,
            prev,
        };
        // A file that cannot be opened now is tried again with every batch:
        // reads go on meanwhile, and changes are refused.
        if let Err(e) = writer.open() {
            writer.set_health(false, Some(&e));
        }
        Ok(writer)
    }

    /// Opens the path for appending (creating it 0600); a new file starts
    /// with a line naming the chain it continues.
    fn open(&mut self) -> std::io::Result<()> {
        // Kept elsewhere than the data directory: in a directory others may
        // write, they could make the file first, or in its place at a
        // rotation, and read or cut what it says.
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        crate::data_dir::check_directory(dir).map_err(std::io::Error::other)?;
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&self.path)?;
        let meta = file.metadata()?;
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        // Whatever it is (another user's pipe would read every line).
        crate::data_dir::mine_or_root(&self.path, &meta).map_err(std::io::Error::other)?;
        if meta.is_file() {
            if meta.nlink() > 1 {
                return Err(std::io::Error::other(format!(
                    "{} has another name too: the audit log is a file of the server's own",
                    self.path.display()
                )));
            }
            if meta.mode() & 0o077 != 0 {
                file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            }
        }
        self.size = meta.len();
        self.file = Some(file);
        if self.size == 0 {
            let mut header = Map::new();
            header.insert("type".into(), "file".into());
            header.insert("time".into(), now().into());
            header.insert("prev_mac".into(), self.prev.clone().into());
            let header = Value::Object(header).to_string();
            if let Err(e) = self.write_batch(vec![header], true) {
                // Opened again, header first, by the next batch.
                self.file = None;
                return Err(e);
            }
        }
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        tracing::info!(seq = self.seq, head = %head(&self.prev), "audit log rotated");
        let _ = std::fs::remove_file(rotated(&self.path, self.keep));
        for n in (1..self.keep).rev() {
            let from = rotated(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, rotated(&self.path, n + 1))?;
            }
        }
        if self.keep > 0 {
            std::fs::rename(&self.path, rotated(&self.path, 1))?;
        } else {
            std::fs::remove_file(&self.path)?;
        }
        self.open()
    }

    /// Numbers, chains and writes records; nothing of a failed batch stays
    /// in the file or in the chain.
    fn write_batch(&mut self, batch: Vec<String>, sync: bool) -> std::io::Result<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the audit file is not open"))?;
        let (mut seq, mut prev) = (self.seq, self.prev.clone());
        let mut bytes = Vec::with_capacity(batch.len() * 320);
        let mut written = Vec::with_capacity(batch.len());
        for fields in batch {
            seq += 1;
            // `seq` first in the line, spliced into the record's text.
            let body = match fields.strip_prefix('{') {
                Some("}") | None => format!("{{\"seq\":{seq}}}"),
                Some(rest) => format!("{{\"seq\":{seq},{rest}"),
            };
            let (line, mac) = self.keys.seal(&prev, &body);
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
            prev = mac;
            written.push(line);
        }
        let result = file
            .write_all(&bytes)
            .and_then(|()| if sync { file.sync_data() } else { Ok(()) });
        if let Err(e) = result {
            // Cut off whatever part of the batch reached the file.
            let _ = file.set_len(self.size);
            return Err(e);
        }
        self.size += bytes.len() as u64;
        (self.seq, self.prev) = (seq, prev);
        let mut recent = self.recent.lock().expect("recent audit lock");
        for record in written {
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(record);
        }
        Ok(())
    }

    fn set_health(&self, ok: bool, error: Option<&std::io::Error>) {
        let was = self.healthy.swap(ok, Ordering::Relaxed);
        match (was, ok, error) {
            (true, false, Some(e)) => {
                tracing::error!(path = %self.path.display(), "the audit log cannot be written: {e}; changes are refused until it can")
            }
            (false, true, _) => {
                tracing::info!(path = %self.path.display(), "the audit log is written again")
            }
            _ => {}
        }
        if !ok {
            metrics::counter!("credhost_audit_failures_total").increment(1);
        }
    }

    pub fn run(mut self, queue: &super::queue::Queue) {
        while let Some(batch) = queue.take() {
            let mut records = Vec::with_capacity(batch.len());
            let mut acks = Vec::new();
            let mut reopen = false;
            for command in batch {
                match command {
                    Command::Append { body, ack } => {
                        records.push(body);
                        acks.extend(ack);
                    }
                    Command::Reopen => reopen = true,
                }
            }
            if reopen {
                // What logrotate moved away is closed; the path starts anew.
                self.file = None;
                if let Err(e) = self.open() {
                    self.set_health(false, Some(&e));
                }
            }
            if records.is_empty() {
                continue;
            }
            let result = if self.file.is_none() {
                self.open()
                    .and_then(|()| self.write_batch(records, !acks.is_empty()))
            } else {
                self.write_batch(records, !acks.is_empty())
            };
            self.set_health(result.is_ok(), result.as_ref().err());
            let answer = result.as_ref().map(|_| ()).map_err(|e| e.to_string());
            for ack in acks {
                let _ = ack.send(answer.clone());
            }
            if result.is_ok()
                && self.size > self.max_bytes
                && let Err(e) = self.rotate()
            {
                self.set_health(false, Some(&e));
            }
        }
    }
}

pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_at_the_audit_path_is_refused_and_what_it_points_at_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("kek.key");
        std::fs::write(&victim, "no newline").unwrap();
        let path = dir.path().join("audit.log");
        for link in [path.clone(), rotated(&path, 1)] {
            std::os::unix::fs::symlink(&victim, &link).unwrap();
            let refused = resume_from(&link).unwrap_err();
            assert!(refused.to_string().contains("symbolic link"), "{refused}");
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "no newline");
        // Nor through a hard link.
        let hard = dir.path().join("hard.log");
        std::fs::hard_link(&victim, &hard).unwrap();
        let refused = resume_from(&hard).unwrap_err();
        assert!(refused.to_string().contains("hard links"), "{refused}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "no newline");
    }
}
