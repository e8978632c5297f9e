//! Persistence of credentials, behind a trait so another backend (a shared
//! MySQL-protocol database for a fleet) can stand beside redb.

mod record;
mod redb_store;

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

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("conflict: {0:?}")]
    Conflict(Conflict),
    #[error("credential {0} not found")]
    NotFound(u64),
    #[error("the stored secret changed meanwhile")]
    SecretChanged,
    #[error("storage failure: {0}")]
    Backend(String),
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

    /// The conflict `record` would have, without writing. The write itself
    /// checks again, atomically.
    fn conflict(&self, record: &Record) -> Result<Option<Conflict>, StoreError>;

    fn insert(&self, record: &Record) -> Result<(), StoreError>;

    /// Replaces the row `record.id`; returns the row as written.
    fn update(&self, record: Record, secret: SecretWrite) -> Result<Record, StoreError>;

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

/// obshell compares names under a case-insensitive collation that ignores
/// trailing spaces.
pub fn fold_name(name: &str) -> String {
    name.trim_end_matches(' ').to_lowercase()
}
