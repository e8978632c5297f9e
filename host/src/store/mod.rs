//! Persistence of credentials, behind a trait so another backend (a shared
//! MySQL-protocol database for a fleet) can stand beside redb.

use futures::future::BoxFuture;

pub mod mysql;
mod record;
mod redb_store;

pub use mysql::MysqlStore;
pub use record::{Record, SealedSecret};
pub use redb_store::RedbStore;

/// What may be stored twice: the reason a write was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// Another credential has this name (compared case-folded).
    Name(String),
    /// Another credential of the same target type has this ip.
    Host(String),
    /// The same ip appears twice among one credential's targets.
    DuplicateHost(String),
}

/// A credential's last validation, as `put_validations` writes it.
pub struct Validation {
    pub id: u64,
    /// The `updated_us` of the row that was validated; `None`: whatever
    /// the row is now (a copy between stores).
    pub made_on: Option<i64>,
    pub doc: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("conflict: {0:?}")]
    Conflict(Conflict),
    #[error("credential {0} not found")]
    NotFound(u64),
    /// An update's row was written by another update since it was read.
    #[error("credential {0} changed since it was read")]
    Changed(u64),
    #[error("storage failure: {0}")]
    Backend(String),
    /// The database cannot be reached now; the same request may succeed later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The key a secret was sealed under was retired (by another server of
    /// a shared store) before the row was written; sealed again under the
    /// current key, the same request succeeds.
    #[error("the key this secret was sealed with was retired meanwhile; retry")]
    KeyRetired,
    #[error("stored record {id} is unreadable: {reason}")]
    Corrupt { id: u64, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    Id,
    Name,
    TargetType,
    CreateTime,
    UpdateTime,
}

#[derive(Debug, Clone)]
pub struct ListQuery {
    pub credential_id: Option<u64>,
    /// Matched case-insensitively.
    pub target_type: Option<String>,
    /// A literal, case-insensitive substring of the name, a target ip or a
    /// search term of the verifier (the username).
    pub key_word: Option<String>,
    pub sort: SortField,
    pub descending: bool,
    pub offset: u64,
    pub limit: u64,
}

#[derive(Debug, Clone)]
pub struct Page {
    pub total: u64,
    pub records: Vec<Record>,
}

/// How an update treats the stored secret.
#[derive(Debug, Clone)]
pub enum SecretWrite {
    /// Keep whatever the row holds when the update commits (a rewrap may
    /// have re-sealed it since it was read).
    Keep,
    Replace(SealedSecret),
}

pub trait Store: Send + Sync + 'static {
    /// An id never handed out before. Ids are not reused even when the
    /// write they were reserved for fails.
    fn reserve_id(&self) -> Result<u64, StoreError>;

    /// An id as `reserve_id` gives, when the store has one in memory: no
    /// I/O, so an async thread may take it without a hop to the blocking
    /// pool.
    fn reserve_id_at_hand(&self) -> Option<u64> {
        None
    }

    /// The conflict `record` would have, without writing. The write itself
    /// checks again, atomically.
    fn conflict(&self, record: &Record) -> Result<Option<Conflict>, StoreError>;

    /// A new record and, in the same write, `validation`: the document of
    /// the verification that proved it (see `put_validations`).
    fn insert(&self, record: &Record, validation: Option<&str>) -> Result<(), StoreError>;

    /// Writes many records with the ids they carry (a copy from another
    /// store, a benchmark's rows) in one transaction, with `insert`'s checks.
    fn import(&self, records: &[Record]) -> Result<(), StoreError>;

    /// Ids below `next` are never handed out (a copy keeps the source's
    /// counter, so ids its deleted rows had stay unused).
    fn keep_ids_above(&self, next: u64) -> Result<(), StoreError>;

    /// Up to `limit` records with ids above `after`, in id order.
    fn scan(&self, after: u64, limit: usize) -> Result<Vec<Record>, StoreError>;

    /// Whether a point read is quick enough to run on an async thread
    /// (an embedded file's cache) rather than the blocking pool.
    fn inline_reads(&self) -> bool {
        true
    }

    /// `get` as a future that waits on the network without holding a
    /// thread, for a store that has one (the shared store); `None`: call
    /// `get`.
    fn get_async(&self, _id: u64) -> Option<BoxFuture<'_, Result<Option<Record>, StoreError>>> {
        None
    }

    /// Replaces the row `record.id` and, in the same write, its last
    /// validation with `validation` (see `insert`); returns the row as
    /// written. `record.version` is the version the caller read: if the
    /// row has another now, nothing is written ([`StoreError::Changed`]),
    /// since what the caller proved and kept was decided on the row it read.
    fn update(
        &self,
        record: Record,
        secret: SecretWrite,
        validation: Option<&str>,
    ) -> Result<Record, StoreError>;

    fn get(&self, id: u64) -> Result<Option<Record>, StoreError>;

    fn delete(&self, id: u64) -> Result<bool, StoreError>;

    /// Deletes every id that exists, in one transaction; returns those deleted.
    fn delete_many(&self, ids: &[u64]) -> Result<Vec<u64>, StoreError>;

    fn list(&self, query: &ListQuery) -> Result<Page, StoreError>;

    /// Rows per (policy, key id), in (policy, key id) order.
    fn sealing_counts(&self) -> Result<Vec<SealingCount>, StoreError>;

    /// Up to `limit` rows sealed by anything but (`policy`, `key_id`).
    fn not_sealed_by(
        &self,
        policy: &str,
        key_id: u32,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError>;

    /// Swaps sealed secrets in one transaction, each only if the row still
    /// holds `expected`; returns how many were swapped.
    fn replace_secrets(&self, changes: &[SecretChange]) -> Result<usize, StoreError>;

    fn setting(&self, name: &str) -> Result<Option<String>, StoreError>;

    fn set_setting(&self, name: &str, value: &str) -> Result<(), StoreError>;

    /// Records each credential's last validation (JSON the service owns),
    /// replacing the one before; ids no longer stored are skipped, and so
    /// are validations of a row that an update replaced meanwhile (when
    /// `made_on`, the `updated_us` of the row validated, is given): the
    /// update's own proof is newer.
    fn put_validations(&self, docs: &[Validation]) -> Result<(), StoreError>;

    /// The last validations of those of `ids` that have one.
    fn validations(&self, ids: &[u64]) -> Result<Vec<(u64, String)>, StoreError>;

    /// API tokens as (id, JSON document); the service owns their format.
    fn tokens(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// Inserts or replaces a token's document, durably.
    fn put_token(&self, id: &str, doc: &str) -> Result<(), StoreError>;
}

/// What servers that share one database coordinate through. The embedded
/// store has no such thing: one server owns its file.
pub trait Coordination: Send + Sync + 'static {
    /// Records a header's identity until `expiry` (Unix seconds); false if
    /// some server recorded it before and it has not expired.
    fn first_use(&self, digest: &[u8; 32], expiry: u64, now: u64) -> Result<bool, StoreError>;

    /// Forgets identities expired more than `margin_secs` ago by the
    /// database's clock (a server's own may be ahead of the others');
    /// returns how many.
    fn forget_used(&self, margin_secs: u64) -> Result<u64, StoreError>;

    /// Takes the named lease, or renews it if `holder` has it, for `ttl_ms`;
    /// false if another holder's lease has not expired.
    fn hold_lease(&self, name: &str, holder: &str, ttl_ms: u64) -> Result<bool, StoreError>;

    fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;

    fn heartbeat(&self, server: &ServerRow) -> Result<(), StoreError>;

    fn servers(&self) -> Result<Vec<ServerRow>, StoreError>;

    /// Forgets servers silent since `before_us`.
    fn forget_servers(&self, before_us: i64) -> Result<(), StoreError>;

    fn blob(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// The named blob, made by `make` and stored if there is none yet; when
    /// servers race, every one gets the first that was stored.
    fn blob_or_insert(
        &self,
        name: &str,
        make: &mut dyn FnMut() -> Vec<u8>,
    ) -> Result<Vec<u8>, StoreError>;
}

/// One server of a cluster as its heartbeat records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRow {
    pub id: String,
    pub address: String,
    pub version: String,
    pub started_us: i64,
    pub heartbeat_us: i64,
    /// A digest of `plugins`, to compare servers at a glance.
    pub plugins_hash: String,
    /// JSON: the verifiers and policies the server has loaded.
    pub plugins: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealingCount {
    pub policy: String,
    pub key_id: u32,
    pub rows: u64,
}

/// One re-sealed secret, to be written only over the one it replaces.
#[derive(Debug, Clone)]
pub struct SecretChange {
    pub id: u64,
    pub expected: SealedSecret,
    pub new: SealedSecret,
}

/// The ids of `ids` that `delete` found and deleted, in order: a batch
/// delete's body, the same in every store's transaction.
pub(crate) fn delete_each<E>(
    ids: &[u64],
    mut delete: impl FnMut(u64) -> Result<bool, E>,
) -> Result<Vec<u64>, E> {
    let mut deleted = Vec::new();
    for &id in ids {
        if delete(id)? {
            deleted.push(id);
        }
    }
    Ok(deleted)
}

/// obshell compares names under a case-insensitive collation that ignores
/// trailing spaces.
pub fn fold_name(name: &str) -> String {
    name.trim_end_matches(' ').to_lowercase()
}
