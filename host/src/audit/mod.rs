//! The audit log: one JSON line per request that reached the server and
//! per operation the server did on its own (rotations, policy swaps,
//! rewrap steps, plugin reloads, token changes), in `DATA_DIR/audit.log`
//! (0600), chained by MACs so that altering, removing or moving a line
//! shows (`credhost audit verify`).
//!
//! Nothing secret is written: identifiers that must not be readable are
//! written as `hmac-sha256:` values, and passphrases never reach it.
//! Writes fail closed: a change waits for its record to reach the disk and
//! is refused (503) if it cannot; reads go on, and the failure shows in a
//! metric and a log line.

mod chain;
mod queue;
mod unauthenticated;
mod verify;
mod writer;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::{Map, Value};

pub use chain::Keys;
use queue::{Full, Queue};
pub use verify::{Failure, Report, verify};
pub use writer::now;
use writer::{Command, Writer};

use crate::secret::Secret;

/// Records waiting for the writer; past this a change is refused and a
/// read's record is counted as lost.
const QUEUE: usize = 16_384;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    pub enabled: bool,
    /// Default: `audit.log` in the data directory.
    pub path: Option<PathBuf>,
    /// The file is rotated (to `audit.log.1`, …) past this size.
    pub max_bytes: u64,
    /// Rotated files kept.
    pub keep: usize,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            path: None,
            max_bytes: 64 << 20,
            keep: 10,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("the audit log cannot be written: {0}")]
    Unwritable(String),
    #[error("the audit log is not keeping up")]
    Backlog,
}

struct Sink {
    commands: Arc<Queue>,
    recent: Arc<Mutex<VecDeque<String>>>,
    healthy: Arc<AtomicBool>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        // The writer writes what is queued, then ends.
        self.commands.close();
    }
}

pub struct Audit {
    keys: Keys,
    sink: Option<Sink>,
    unauthenticated: unauthenticated::Unauthenticated,
}

impl Audit {
    /// Starts the writer on `path`, continuing the chain already there.
    pub fn open(settings: &AuditSettings, path: PathBuf, master: &Secret) -> std::io::Result<Self> {
        let keys = Keys::from_master(master);
        let recent = Arc::new(Mutex::new(VecDeque::with_capacity(writer::RECENT)));
        let healthy = Arc::new(AtomicBool::new(true));
        let writer = Writer::new(
            path,
            settings.max_bytes.max(4096),
            settings.keep,
            keys.clone(),
            recent.clone(),
            healthy.clone(),
        )?;
        let commands = Arc::new(Queue::new(QUEUE));
        let queue = commands.clone();
        std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || writer.run(&queue))?;
        Ok(Self {
            keys,
            sink: Some(Sink {
                commands,
                recent,
                healthy,
            }),
            unauthenticated: Default::default(),
        })
    }

    /// Records nothing (tests and benchmarks that do not look at it).
    pub fn disabled() -> Self {
        Self {
            keys: Keys::from_master(&Secret::new(rand::random::<[u8; 32]>().to_vec())),
            sink: None,
            unauthenticated: Default::default(),
        }
    }

    /// Whether a request from `peer` that nobody authenticated gets a
    /// record, and if so how many of that client's of the same kind (refused
    /// by authentication, or not) went without one since (see
    /// `unauthenticated`).
    pub fn admit_unauthenticated(&self, peer: std::net::IpAddr, refused: bool) -> Option<u64> {
        self.unauthenticated
            .admit(peer, refused, std::time::Instant::now())
    }

    pub fn enabled(&self) -> bool {
        self.sink.is_some()
    }

    /// Whether the last write reached the file.
    pub fn healthy(&self) -> bool {
        self.sink
            .as_ref()
            .is_none_or(|s| s.healthy.load(Ordering::Relaxed))
    }

    pub fn hash(&self, value: &str) -> String {
        self.keys.hash(value)
    }

    /// Queues a record; if the queue is full it is lost, and counted.
    pub fn record(&self, fields: Map<String, Value>) {
        if self.sink.is_some() {
            self.record_json(Value::Object(fields).to_string());
        }
    }

    /// Queues a record already written as a JSON object (without `seq`).
    pub fn record_json(&self, body: String) {
        let Some(sink) = &self.sink else { return };
        if let Err(Full) = sink.commands.push(Command::Append { body, ack: None }) {
            metrics::counter!("credhost_audit_failures_total").increment(1);
            metrics::counter!("credhost_audit_records_lost_total").increment(1);
        }
    }

    /// Writes a record and waits until it is on disk: what a change must
    /// have before it is made.
    pub async fn record_durably(&self, fields: Map<String, Value>) -> Result<(), AuditError> {
        self.record_json_durably(Value::Object(fields).to_string())
            .await
    }

    /// `record_durably` for a record already written as a JSON object.
    pub async fn record_json_durably(&self, body: String) -> Result<(), AuditError> {
        let Some(sink) = &self.sink else {
            return Ok(());
        };
        let (ack, done) = tokio::sync::oneshot::channel();
        sink.commands
            .push(Command::Append {
                body,
                ack: Some(ack),
            })
            .map_err(|Full| AuditError::Backlog)?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(AuditError::Unwritable(reason)),
            Err(_) => Err(AuditError::Unwritable("the audit writer stopped".into())),
        }
    }

    /// An operation of the server's own: `{"type": "event", "event": name, …}`.
    pub fn event(&self, name: &str, details: Value) {
        let mut fields = Map::new();
        fields.insert("time".into(), now().into());
        fields.insert("type".into(), "event".into());
        fields.insert("event".into(), name.into());
        if let Value::Object(details) = details {
            fields.extend(details);
        }
        self.record(fields);
    }

    /// Closes and reopens the file (after logrotate moved it).
    pub fn reopen(&self) {
        if let Some(sink) = &self.sink {
            let _ = sink.commands.push(Command::Reopen);
        }
    }

    /// The latest records, newest first, that `keep` accepts.
    pub fn recent(&self, limit: usize, keep: impl Fn(&Value) -> bool) -> Vec<Value> {
        let Some(sink) = &self.sink else {
            return Vec::new();
        };
        // Lines are kept as written and read back only here: the admin
        // endpoint is rare, records are many. Copied out first, so the
        // writer does not wait while they are read.
        let lines: Vec<String> = sink
            .recent
            .lock()
            .expect("recent audit lock")
            .iter()
            .cloned()
            .collect();
        lines
            .iter()
            .rev()
            .filter_map(|line| {
                let (body, _mac) = chain::split(line)?;
                serde_json::from_str::<Value>(&body).ok()
            })
            .filter(|r| keep(r))
            .take(limit)
            .collect()
    }
}
