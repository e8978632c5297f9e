//! The shared store: one MySQL-protocol database (MariaDB, MySQL; TiDB and
//! OceanBase where operators have them) that several servers use at once.
//!
//! The same semantics as the embedded store, enforced by the database: the
//! folded name and each (target type, ip) are unique keys, checked inside
//! the write transaction; pages are read in index order; ids come from a
//! sequence row and are never reused; every write is committed before it is
//! answered; rows hold the same sealed record the embedded store holds,
//! beside the columns its indexes need.
//!
//! Writes, lists and scans go through the blocking `mysql` crate: the
//! `Store` trait is synchronous and they run on the blocking pool. Point
//! reads, the bulk of the traffic, go through `mysql_async` (the same
//! protocol code) on a pool of their own, so a GET waits on the database
//! without parking a thread (see `reads.rs`). Neither sends `SET NAMES`
//! (OceanBase and TiDB refuse some `COLLATE` forms).

mod cluster;
mod integrity;
mod keys;
mod options;
mod reads;
pub mod schema;

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::time::Duration;

use mysql::prelude::Queryable;
use mysql::{Pool, PooledConn, Transaction, TxOpts, Value};

pub use integrity::RowMac;
pub use options::{StoreOptions, StoreTls, redacted};

use super::{
    Conflict, ListQuery, Page, Record, SealingCount, SecretChange, SecretWrite, SortField, Store,
    StoreError, Validation, fold_name,
};

pub struct MysqlStore {
    pool: Pool,
    reads: reads::Reads,
    /// Ids reserved for this server and not handed out yet. Servers take
    /// blocks, not single ids, so creates do not queue on the sequence
    /// row: ids stay unique and are never reused, but two servers' ids
    /// interleave, and a block a server did not use up is skipped.
    ids: std::sync::Mutex<std::ops::Range<u64>>,
    /// Set once the key-encryption key is known; rows are neither read
    /// nor written before.
    mac: OnceLock<RowMac>,
    /// Where the rewrap's sweep got to. See `not_sealed_by`.
    sweep: std::sync::Mutex<Sweep>,
}

/// The highest id a sweep towards (`policy`, `key_id`) was handed.
#[derive(Default)]
struct Sweep {
    policy: String,
    key_id: u32,
    reached: u64,
}

/// Ids a server takes from the shared sequence at a time.
const ID_BLOCK: u64 = 256;

/// How long a request waits for one of the pool's connections.
const CONNECTION_WAIT: Duration = Duration::from_secs(10);

pub(super) fn now_us() -> i64 {
    crate::clock::now_us()
}

const DUPLICATE_KEY: u16 = 1062;
const LOCK_WAIT_TIMEOUT: u16 = 1205;
const DEADLOCK: u16 = 1213;
/// TiDB's optimistic write conflict: retryable like a deadlock.
const WRITE_CONFLICT: u16 = 9007;
/// A row referencing a key that was retired meanwhile.
const NO_PARENT_ROW: u16 = 1452;
/// The server cannot take this now: going away, refusing sessions, read
/// only after a failover, not yet part of its cluster.
const UNAVAILABLE: [u16; 10] = [1040, 1047, 1053, 1290, 1792, 1927, 4031, 8022, 9001, 9002];

/// The id and name of the row `foreign_keys_hold` tries to write.
const PROBE_ID: u64 = u64::MAX;
const PROBE_NAME: &[u8] = b"\0credhost: a row sealed by no key";

/// Refuses a database that would keep a row sealed by a key it does not
/// have: key retirement counts on the foreign key from rows to keys, which
/// a database may ignore (TiDB before 6.6, a table made by an engine
/// without foreign keys or transactions, such as MyISAM or Aria).
fn foreign_keys_hold(conn: &mut PooledConn) -> Result<(), StoreError> {
    let mut attempt = 0;
    let written = loop {
        attempt += 1;
        let mut tx = conn.start_transaction(TxOpts::default()).map_err(backend)?;
        let written = tx.exec_drop(
            "INSERT INTO credhost_credentials \
             (id, name_key, type_key, created_us, updated_us, policy, key_id, haystack, body) \
             VALUES (?, ?, '', 0, 0, '', ?, '', '')",
            (PROBE_ID, PROBE_NAME, u32::MAX),
        );
        let _ = tx.rollback();
        // Servers started together probe the same row at once, and the
        // database may end one probe as a deadlock's victim: as any write
        // does, it tries again.
        match &written {
            Err(e)
                if attempt < WRITE_ATTEMPTS
                    && matches!(code(e), Some(DEADLOCK | LOCK_WAIT_TIMEOUT)) =>
            {
                retry_pause(attempt);
            }
            _ => break written,
        }
    };
    match written {
        // ER_NO_REFERENCED_ROW(_2): the key does not exist, as it must not.
        Err(mysql::Error::MySqlError(e)) if e.code == 1452 || e.code == 1216 => Ok(()),
        // Written, or there from an earlier try that a table without
        // transactions did not roll back.
        Ok(()) | Err(mysql::Error::MySqlError(mysql::MySqlError { code: 1062, .. })) => {
            let _ = conn.exec_drop(
                "DELETE FROM credhost_credentials WHERE id = ? AND name_key = ?",
                (PROBE_ID, PROBE_NAME),
            );
            Err(StoreError::Backend(
                "the database does not enforce the foreign key from credentials to keys (an \
                 engine without foreign keys or transactions, such as MyISAM or Aria, or TiDB \
                 before 6.6): a retired key could leave rows no server can open; use InnoDB"
                    .into(),
            ))
        }
        Err(e) => Err(backend(e)),
    }
}

/// Connection-level failures make the store unavailable (a 503 the client
/// may retry); anything else is a failure of the statement. The driver's
/// words (addresses, statements) go to the log, not to the client.
fn backend(e: mysql::Error) -> StoreError {
    let connection = matches!(
        &e,
        mysql::Error::IoError(_) | mysql::Error::DriverError(_) | mysql::Error::CodecError(_)
    );
    classify(connection, code(&e), &e)
}

/// `connection`: the failure is the connection's, not the statement's;
/// `code`: the server's error code, when it answered with one.
fn classify(connection: bool, code: Option<u16>, e: &dyn std::fmt::Display) -> StoreError {
    let unavailable = connection
        || code.is_some_and(|code| {
            UNAVAILABLE.contains(&code)
                || [DEADLOCK, LOCK_WAIT_TIMEOUT, WRITE_CONFLICT].contains(&code)
        });
    if unavailable {
        tracing::warn!("the shared store is unavailable: {e}");
        StoreError::Unavailable("the credential store is unavailable; retry".into())
    } else {
        tracing::error!("the shared store failed: {e}");
        StoreError::Backend(format!(
            "the credential store refused a statement ({})",
            code.map_or("driver".to_string(), |c| c.to_string())
        ))
    }
}

fn code(e: &mysql::Error) -> Option<u16> {
    match e {
        mysql::Error::MySqlError(m) => Some(m.code),
        _ => None,
    }
}

/// How many transactions a write makes before giving up on deadlocks.
const WRITE_ATTEMPTS: usize = 4;

/// What a failed statement inside a write means.
enum Abort {
    Store(StoreError),
    Sql(mysql::Error),
}

impl From<mysql::Error> for Abort {
    fn from(e: mysql::Error) -> Self {
        Abort::Sql(e)
    }
}

impl From<StoreError> for Abort {
    fn from(e: StoreError) -> Self {
        Abort::Store(e)
    }
}

type Tx<'a> = Transaction<'a>;

const CREDENTIAL: &str = "credential";
const TOKEN: &str = "token";
/// A validation's record, the proof of a credential's create or update.
const VALIDATION: &str = "validation";

impl MysqlStore {
    /// The next `ID_BLOCK` ids, taken from the shared sequence for this
    /// server alone. LAST_INSERT_ID(expr) hands the new value back in the
    /// same statement's answer, atomically.
    fn reserve_block(&self) -> Result<std::ops::Range<u64>, StoreError> {
        let mut conn = self.conn()?;
        conn.exec_drop(
            "UPDATE credhost_sequences SET next = LAST_INSERT_ID(next + ?) WHERE name = 'credential'",
            (ID_BLOCK,),
        )
        .map_err(backend)?;
        let end = conn.last_insert_id();
        if end == 0 {
            return Err(StoreError::Backend(
                "the credential sequence is missing".into(),
            ));
        }
        Ok(end - ID_BLOCK..end)
    }

    /// A validation's record as stored: under a MAC bound to its
    /// credential, so the database cannot forge or move a proof.
    fn sealed_validation(&self, id: u64, doc: &str) -> Result<Vec<u8>, StoreError> {
        Ok(self
            .mac()?
            .seal(VALIDATION, id.to_string().as_bytes(), doc.as_bytes()))
    }

    fn mac(&self) -> Result<&RowMac, StoreError> {
        self.mac
            .get()
            .ok_or_else(|| StoreError::Backend("the store's integrity key is not set".into()))
    }

    /// Rows are sealed and verified with this key (derived from the
    /// key-encryption key) from now on.
    pub fn set_integrity_key(&self, mac: RowMac) {
        let _ = self.mac.set(mac);
    }

    fn decode(&self, id: u64, stored: &[u8]) -> Result<Record, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt { id, reason };
        let body = self
            .mac()?
            .open(CREDENTIAL, &id.to_be_bytes(), stored)
            .ok_or_else(|| corrupt("its integrity tag does not verify: written by someone without the key-encryption key".into()))?;
        let record = Record::decode(body).map_err(|e| corrupt(e.to_string()))?;
        if record.id != id {
            return Err(corrupt(format!("it holds credential {}", record.id)));
        }
        Ok(record)
    }

    /// The columns of a row beside its sealed body, in `ROW_COLUMNS` order.
    fn row_values(&self, record: &Record) -> Result<Vec<Value>, StoreError> {
        let body = self
            .mac()?
            .seal(CREDENTIAL, &record.id.to_be_bytes(), &record.encode());
        Ok(vec![
            record.id.into(),
            fold_name(&record.name).into_bytes().into(),
            record.target_type.to_uppercase().into_bytes().into(),
            record.created_us.into(),
            record.updated_us.into(),
            record.secret.policy.as_bytes().to_vec().into(),
            record.secret.key_id.into(),
            record.haystack().into_bytes().into(),
            body.into(),
        ])
    }

    fn values_of(&self, records: &[Record]) -> Result<Vec<Value>, StoreError> {
        let mut values = Vec::with_capacity(records.len() * 9);
        for record in records {
            values.extend(self.row_values(record)?);
        }
        Ok(values)
    }

    fn load(
        &self,
        conn: &mut impl Queryable,
        id: u64,
        lock: bool,
    ) -> Result<Option<Record>, Abort> {
        let sql = if lock {
            "SELECT body FROM credhost_credentials WHERE id = ? FOR UPDATE"
        } else {
            "SELECT body FROM credhost_credentials WHERE id = ?"
        };
        let body: Option<Vec<u8>> = conn.exec_first(sql, (id,))?;
        Ok(body.map(|b| self.decode(id, &b)).transpose()?)
    }

    /// Up to `limit` rows with ids above `after` sealed by anything but
    /// (`policy`, `key_id`), group by group through the sealing index: each
    /// query is a range read, however few rows are left.
    fn sealed_otherwise(
        &self,
        conn: &mut PooledConn,
        policy: &str,
        key_id: u32,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let mut records = Vec::new();
        // The groups without counting them: a loose scan of the index
        // reads one entry per group, not one per row.
        let groups: Vec<(Vec<u8>, u32)> = conn
            .query("SELECT DISTINCT policy, key_id FROM credhost_credentials")
            .map_err(backend)?;
        for (group_policy, group_key) in groups {
            if group_policy == policy.as_bytes() && group_key == key_id {
                continue;
            }
            let room = limit - records.len();
            let rows: Vec<(u64, Vec<u8>)> = conn
                .exec(
                    "SELECT id, body FROM credhost_credentials \
                     WHERE policy = ? AND key_id = ? AND id > ? ORDER BY id LIMIT ?",
                    (&group_policy, group_key, after, room as u64),
                )
                .map_err(backend)?;
            for (id, body) in rows {
                records.push(self.decode(id, &body)?);
            }
            if records.len() >= limit {
                break;
            }
        }
        Ok(records)
    }
}

const ROW_COLUMNS: &str =
    "id, name_key, type_key, created_us, updated_us, policy, key_id, haystack, body";

fn placeholders(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

impl MysqlStore {
    /// Connects and brings the schema to this server's version.
    pub fn open(options: &StoreOptions) -> Result<Self, StoreError> {
        let store = Self::connect(options)?;
        let mut conn = store.conn()?;
        schema::migrate(&mut conn, schema::LATEST)?;
        foreign_keys_hold(&mut conn)?;
        Ok(store)
    }

    /// Connects without touching the schema.
    pub fn connect(options: &StoreOptions) -> Result<Self, StoreError> {
        let pool = Pool::new(options.opts()?).map_err(backend)?;
        Ok(Self {
            pool,
            reads: reads::Reads::new(options.async_opts()?),
            ids: std::sync::Mutex::new(0..0),
            mac: OnceLock::new(),
            sweep: std::sync::Mutex::default(),
        })
    }

    /// Applies the migrations up to `target` (a staged upgrade); returns the
    /// version the database is at.
    pub fn migrate_to(&self, target: u32) -> Result<u32, StoreError> {
        schema::migrate(&mut self.conn()?, target)
    }

    fn conn(&self) -> Result<PooledConn, StoreError> {
        self.pool.try_get_conn(CONNECTION_WAIT).map_err(backend)
    }

    /// Runs `f` in a transaction, committing what it returns Ok; a deadlock
    /// or lock timeout runs it again from the start.
    fn write<T>(&self, mut f: impl FnMut(&mut Tx) -> Result<T, Abort>) -> Result<T, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut conn = self.conn()?;
            let mut tx = conn.start_transaction(TxOpts::default()).map_err(backend)?;
            let outcome = f(&mut tx).and_then(|value| {
                tx.commit()?;
                Ok(value)
            });
            match outcome {
                Ok(value) => return Ok(value),
                Err(Abort::Store(e)) => return Err(e),
                Err(Abort::Sql(e))
                    if attempt < WRITE_ATTEMPTS
                        && matches!(
                            code(&e),
                            Some(DEADLOCK | LOCK_WAIT_TIMEOUT | WRITE_CONFLICT)
                        ) =>
                {
                    // The transaction was rolled back when it dropped; the
                    // connection goes back to the pool for the pause.
                    drop(conn);
                    retry_pause(attempt);
                    continue;
                }
                Err(Abort::Sql(e)) if code(&e) == Some(NO_PARENT_ROW) => {
                    return Err(StoreError::KeyRetired);
                }
                Err(Abort::Sql(e)) => return Err(backend(e)),
            }
        }
    }

    /// Writes rows with the ids they carry, with the checks of the embedded
    /// store in its order: the name, then each target in turn.
    fn insert_rows(&self, tx: &mut Tx, records: &[Record]) -> Result<(), Abort> {
        for chunk in records.chunks(256) {
            let sql = format!(
                "INSERT INTO credhost_credentials ({ROW_COLUMNS}) VALUES {}",
                placeholders(chunk.len(), 9)
            );
            tx.exec_drop(sql, self.values_of(chunk)?)
                .map_err(|e| name_conflict(e, chunk))?;
            for record in chunk {
                check_own_hosts(record)?;
            }
            let hosts: Vec<(&Record, String)> = chunk
                .iter()
                .flat_map(|r| r.targets.iter().map(move |t| (r, t.ip.to_string())))
                .collect();
            for part in hosts.chunks(1024) {
                insert_hosts(tx, part)?;
            }
        }
        count(tx, records.len() as i64)?;
        Ok(())
    }
}

const COUNT_SHARDS: u8 = 16;

/// Adds `delta` to the count of credentials, in a shard of its own choosing.
fn count(tx: &mut Tx, delta: i64) -> Result<(), mysql::Error> {
    tx.exec_drop(
        "UPDATE credhost_counts SET n = n + ? WHERE shard = ?",
        (delta, rand::random::<u8>() % COUNT_SHARDS),
    )
}

fn keep_ids_above(conn: &mut impl Queryable, next: u64) -> Result<(), mysql::Error> {
    conn.exec_drop(
        "UPDATE credhost_sequences SET next = GREATEST(next, ?) WHERE name = 'credential'",
        (next,),
    )
}

/// The same ip twice among one credential's own targets.
fn check_own_hosts(record: &Record) -> Result<(), StoreError> {
    let mut seen = HashSet::new();
    for target in &record.targets {
        let ip = target.ip.to_string();
        if !seen.insert(ip.clone()) {
            return Err(StoreError::Conflict(Conflict::DuplicateHost(ip)));
        }
    }
    Ok(())
}

/// A duplicate key on the credentials table is a taken name.
fn name_conflict(e: mysql::Error, records: &[Record]) -> Abort {
    if code(&e) != Some(DUPLICATE_KEY) {
        return Abort::Sql(e);
    }
    let message = e.to_string();
    let name = records
        .iter()
        .find(|r| message.contains(&fold_name(&r.name)))
        .or(records.first())
        .map(|r| r.name.clone())
        .unwrap_or_default();
    Abort::Store(StoreError::Conflict(Conflict::Name(name)))
}

fn insert_hosts(tx: &mut Tx, hosts: &[(&Record, String)]) -> Result<(), Abort> {
    if hosts.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO credhost_hosts (target_type, ip, credential_id) VALUES {}",
        placeholders(hosts.len(), 3)
    );
    let values: Vec<Value> = hosts
        .iter()
        .flat_map(|(r, ip)| {
            [
                r.target_type.as_bytes().to_vec().into(),
                ip.as_bytes().to_vec().into(),
                r.id.into(),
            ]
        })
        .collect();
    match tx.exec_drop(sql, values) {
        Ok(()) => Ok(()),
        Err(e) if code(&e) == Some(DUPLICATE_KEY) => {
            // Name the ip: the first one another credential holds.
            let mut taken = None;
            for (record, ip) in hosts {
                let owner: Option<u64> = tx.exec_first(
                    "SELECT credential_id FROM credhost_hosts WHERE target_type = ? AND ip = ?",
                    (record.target_type.as_bytes(), ip.as_bytes()),
                )?;
                if owner.is_some_and(|o| o != record.id) {
                    taken = Some(ip.clone());
                    break;
                }
            }
            let ip = taken.unwrap_or_else(|| hosts[0].1.clone());
            Err(Abort::Store(StoreError::Conflict(Conflict::Host(ip))))
        }
        Err(e) => Err(e.into()),
    }
}

fn delete_in(tx: &mut Tx, id: u64) -> Result<bool, Abort> {
    tx.exec_drop("DELETE FROM credhost_credentials WHERE id = ?", (id,))?;
    if tx.affected_rows() == 0 {
        return Ok(false);
    }
    count(tx, -1)?;
    tx.exec_drop("DELETE FROM credhost_hosts WHERE credential_id = ?", (id,))?;
    tx.exec_drop(
        "DELETE FROM credhost_validations WHERE credential_id = ?",
        (id,),
    )?;
    Ok(true)
}

fn in_list(n: usize) -> String {
    vec!["?"; n].join(", ")
}

impl Store for MysqlStore {
    fn reserve_id(&self) -> Result<u64, StoreError> {
        let mut ids = self.ids.lock().expect("id block lock");
        if ids.start >= ids.end {
            *ids = self.reserve_block()?;
        }
        Ok(ids.next().expect("a fresh block is not empty"))
    }

    fn reserve_id_at_hand(&self) -> Option<u64> {
        // A block being fetched holds the lock: then the blocking path.
        self.ids.try_lock().ok()?.next()
    }

    fn conflict(&self, record: &Record) -> Result<Option<Conflict>, StoreError> {
        let mut conn = self.conn()?;
        let owner: Option<u64> = conn
            .exec_first(
                "SELECT id FROM credhost_credentials WHERE name_key = ?",
                (fold_name(&record.name).into_bytes(),),
            )
            .map_err(backend)?;
        if owner.is_some_and(|o| o != record.id) {
            return Ok(Some(Conflict::Name(record.name.clone())));
        }
        let mut taken = HashSet::new();
        for chunk in record.targets.chunks(500) {
            let ips: Vec<String> = chunk.iter().map(|t| t.ip.to_string()).collect();
            let sql = format!(
                "SELECT ip FROM credhost_hosts WHERE target_type = ? AND credential_id <> ? \
                 AND ip IN ({})",
                in_list(ips.len())
            );
            let mut values: Vec<Value> = vec![
                record.target_type.as_bytes().to_vec().into(),
                record.id.into(),
            ];
            values.extend(ips.iter().map(|ip| Value::from(ip.as_bytes().to_vec())));
            let rows: Vec<Vec<u8>> = conn.exec(sql, values).map_err(backend)?;
            taken.extend(
                rows.into_iter()
                    .map(|ip| String::from_utf8_lossy(&ip).into_owned()),
            );
        }
        // The first in the request's order, as the embedded store names it.
        let mut seen = HashSet::new();
        for target in &record.targets {
            let ip = target.ip.to_string();
            if !seen.insert(ip.clone()) {
                return Ok(Some(Conflict::DuplicateHost(ip)));
            }
            if taken.contains(&ip) {
                return Ok(Some(Conflict::Host(ip)));
            }
        }
        Ok(None)
    }

    fn keep_ids_above(&self, next: u64) -> Result<(), StoreError> {
        keep_ids_above(&mut self.conn()?, next).map_err(backend)?;
        // A block taken before may lie below `next`: take the next one after.
        *self.ids.lock().expect("id block lock") = 0..0;
        Ok(())
    }

    fn insert(&self, record: &Record, validation: Option<&str>) -> Result<(), StoreError> {
        // Its id came from `reserve_id`, so the sequence is past it already;
        // touching the sequence row here would make every create wait on
        // every other's commit.
        self.write(|tx| {
            self.insert_rows(tx, std::slice::from_ref(record))?;
            if let Some(doc) = validation {
                put_validation(tx, record.id, &self.sealed_validation(record.id, doc)?)?;
            }
            Ok(())
        })
    }

    fn import(&self, records: &[Record]) -> Result<(), StoreError> {
        self.write(|tx| {
            self.insert_rows(tx, records)?;
            let top = records.iter().map(|r| r.id + 1).max().unwrap_or(1);
            keep_ids_above(tx, top)?;
            Ok(())
        })
    }

    fn update(
        &self,
        record: Record,
        secret: SecretWrite,
        validation: Option<&str>,
    ) -> Result<Record, StoreError> {
        self.write(|tx| {
            let current = self
                .load(tx, record.id, true)?
                .ok_or(StoreError::NotFound(record.id))?;
            if current.version != record.version {
                return Err(StoreError::Changed(record.id).into());
            }
            let mut record = record.clone();
            record.created_us = current.created_us;
            record.target_type = current.target_type.clone();
            record.version = current.version + 1;
            record.secret = match &secret {
                SecretWrite::Replace(sealed) => sealed.clone(),
                SecretWrite::Keep => current.secret.clone(),
            };
            let mut values = self.row_values(&record)?;
            let id = values.remove(0);
            values.push(id);
            tx.exec_drop(
                "UPDATE credhost_credentials SET name_key = ?, type_key = ?, created_us = ?, \
                 updated_us = ?, policy = ?, key_id = ?, haystack = ?, body = ? WHERE id = ?",
                values,
            )
            .map_err(|e| name_conflict(e, std::slice::from_ref(&record)))?;
            check_own_hosts(&record)?;
            tx.exec_drop(
                "DELETE FROM credhost_hosts WHERE credential_id = ?",
                (record.id,),
            )?;
            let hosts: Vec<(&Record, String)> = record
                .targets
                .iter()
                .map(|t| (&record, t.ip.to_string()))
                .collect();
            for part in hosts.chunks(1024) {
                insert_hosts(tx, part)?;
            }
            if let Some(doc) = validation {
                put_validation(tx, record.id, &self.sealed_validation(record.id, doc)?)?;
            }
            Ok(record)
        })
    }

    fn get(&self, id: u64) -> Result<Option<Record>, StoreError> {
        let mut conn = self.conn()?;
        match self.load(&mut conn, id, false) {
            Ok(record) => Ok(record),
            Err(Abort::Store(e)) => Err(e),
            Err(Abort::Sql(e)) => Err(backend(e)),
        }
    }

    fn inline_reads(&self) -> bool {
        false
    }

    fn get_async(
        &self,
        id: u64,
    ) -> Option<futures::future::BoxFuture<'_, Result<Option<Record>, StoreError>>> {
        Some(Box::pin(async move {
            let body = self.reads.body(id).await?;
            body.map(|b| self.decode(id, &b)).transpose()
        }))
    }

    fn delete(&self, id: u64) -> Result<bool, StoreError> {
        self.write(|tx| delete_in(tx, id))
    }

    fn delete_many(&self, ids: &[u64]) -> Result<Vec<u64>, StoreError> {
        self.write(|tx| super::delete_each(ids, |id| delete_in(tx, id)))
    }

    fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let mut filters = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        if let Some(id) = query.credential_id {
            filters.push("id = ?");
            values.push(id.into());
        }
        if let Some(kind) = &query.target_type {
            filters.push("type_key = ?");
            values.push(kind.to_uppercase().into_bytes().into());
        }
        if let Some(word) = &query.key_word {
            // A binary LOCATE: a literal substring, no wildcards.
            filters.push("LOCATE(?, haystack) > 0");
            values.push(word.to_lowercase().into_bytes().into());
        }
        let filter = if filters.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", filters.join(" AND "))
        };
        // The total and the page from one snapshot, so they agree (the
        // transaction rolls back when dropped: it only read).
        let mut conn = self.conn()?;
        let mut conn = conn
            .start_transaction(
                TxOpts::default()
                    .set_with_consistent_snapshot(true)
                    .set_access_mode(Some(mysql::AccessMode::ReadOnly)),
            )
            .map_err(backend)?;
        let total: Option<u64> = if filters.is_empty() {
            conn.query_first("SELECT CAST(SUM(n) AS UNSIGNED) FROM credhost_counts")
        } else {
            conn.exec_first(
                format!("SELECT COUNT(*) FROM credhost_credentials{filter}"),
                values.clone(),
            )
        }
        .map_err(backend)?;
        let total = total.unwrap_or(0);
        if total == 0 || query.limit == 0 || query.offset >= total {
            return Ok(Page {
                total,
                records: Vec::new(),
            });
        }
        let direction = if query.descending { "DESC" } else { "ASC" };
        // Names are unique: their index alone orders them. The others end
        // in the id, as the indexes do.
        let order = |table: &str| match query.sort {
            SortField::Id => format!("{table}id {direction}"),
            SortField::Name => format!("{table}name_key {direction}"),
            SortField::TargetType => format!("{table}type_key {direction}, {table}id {direction}"),
            SortField::CreateTime => {
                format!("{table}created_us {direction}, {table}id {direction}")
            }
            SortField::UpdateTime => {
                format!("{table}updated_us {direction}, {table}id {direction}")
            }
        };
        values.push(query.limit.into());
        values.push(query.offset.into());
        // The page's ids from the index alone, then only their bodies: an
        // offset skips index entries, not rows.
        let rows: Vec<(u64, Vec<u8>)> = conn
            .exec(
                format!(
                    "SELECT c.id, c.body FROM credhost_credentials c JOIN \
                     (SELECT id FROM credhost_credentials{filter} ORDER BY {} LIMIT ? OFFSET ?) p \
                     ON c.id = p.id ORDER BY {}",
                    order(""),
                    order("c.")
                ),
                values,
            )
            .map_err(backend)?;
        let records = rows
            .iter()
            .map(|(id, body)| self.decode(*id, body))
            .collect::<Result<_, _>>()?;
        Ok(Page { total, records })
    }

    fn scan(&self, after: u64, limit: usize) -> Result<Vec<Record>, StoreError> {
        let rows: Vec<(u64, Vec<u8>)> = self
            .conn()?
            .exec(
                "SELECT id, body FROM credhost_credentials WHERE id > ? ORDER BY id LIMIT ?",
                (after, limit as u64),
            )
            .map_err(backend)?;
        rows.iter()
            .map(|(id, body)| self.decode(*id, body))
            .collect()
    }

    fn sealing_counts(&self) -> Result<Vec<SealingCount>, StoreError> {
        let rows: Vec<(Vec<u8>, u32, u64)> = self
            .conn()?
            .query(
                "SELECT policy, key_id, COUNT(*) FROM credhost_credentials \
                 GROUP BY policy, key_id ORDER BY policy, key_id",
            )
            .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|(policy, key_id, rows)| SealingCount {
                policy: String::from_utf8_lossy(&policy).into_owned(),
                key_id,
                rows,
            })
            .collect())
    }

    fn not_sealed_by(
        &self,
        policy: &str,
        key_id: u32,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        // InnoDB leaves a resealed row's old entry in the sealing index,
        // delete-marked, until its purge thread gets to it; a read from the
        // start of the old group steps over every one of them, so each
        // batch of a rewrap read longer than the one before. Each read
        // starts after the last id handed out instead, and only a read that
        // finds nothing there looks again from the start: rows skipped on
        // the way (another group's, a row written under an old key
        // meanwhile) are found then, and nothing is answered empty while a
        // row is left.
        let after = {
            let sweep = self.sweep.lock().unwrap_or_else(|e| e.into_inner());
            if sweep.policy == policy && sweep.key_id == key_id {
                sweep.reached
            } else {
                0
            }
        };
        let mut conn = self.conn()?;
        let mut records = self.sealed_otherwise(&mut conn, policy, key_id, after, limit)?;
        if records.is_empty() && after > 0 {
            records = self.sealed_otherwise(&mut conn, policy, key_id, 0, limit)?;
        }
        *self.sweep.lock().unwrap_or_else(|e| e.into_inner()) = Sweep {
            policy: policy.to_string(),
            key_id,
            reached: records.iter().map(|r| r.id).max().unwrap_or(0),
        };
        Ok(records)
    }

    fn replace_secrets(&self, changes: &[SecretChange]) -> Result<usize, StoreError> {
        if changes.is_empty() {
            return Ok(0);
        }
        self.write(|tx| {
            let mut replaced = Vec::with_capacity(changes.len());
            for part in changes.chunks(512) {
                let sql = format!(
                    "SELECT id, body FROM credhost_credentials WHERE id IN ({}) FOR UPDATE",
                    in_list(part.len())
                );
                let ids: Vec<Value> = part.iter().map(|c| c.id.into()).collect();
                let rows: Vec<(u64, Vec<u8>)> = tx.exec(sql, ids)?;
                for (id, body) in rows {
                    let mut record = self.decode(id, &body)?;
                    let Some(change) = part.iter().find(|c| c.id == id) else {
                        continue;
                    };
                    // Written since it was read: leave it be.
                    if record.secret != change.expected {
                        continue;
                    }
                    record.secret = change.new.clone();
                    replaced.push(record);
                }
            }
            for part in replaced.chunks(256) {
                // Every row exists and is locked: this only updates.
                let sql = format!(
                    "INSERT INTO credhost_credentials ({ROW_COLUMNS}) VALUES {} \
                     ON DUPLICATE KEY UPDATE policy = VALUES(policy), key_id = VALUES(key_id), \
                     body = VALUES(body)",
                    placeholders(part.len(), 9)
                );
                tx.exec_drop(sql, self.values_of(part)?)?;
            }
            Ok(replaced.len())
        })
    }

    fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        let value: Option<Vec<u8>> = self
            .conn()?
            .exec_first(
                "SELECT value FROM credhost_settings WHERE name = ?",
                (name.as_bytes(),),
            )
            .map_err(backend)?;
        Ok(value.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    fn set_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.conn()?
            .exec_drop(
                "INSERT INTO credhost_settings (name, value) VALUES (?, ?) \
                 ON DUPLICATE KEY UPDATE value = VALUES(value)",
                (name.as_bytes(), value.as_bytes()),
            )
            .map_err(backend)
    }

    fn put_validations(&self, docs: &[Validation]) -> Result<(), StoreError> {
        let sealed = (docs.iter())
            .map(|v| self.sealed_validation(v.id, &v.doc))
            .collect::<Result<Vec<_>, _>>()?;
        self.write(|tx| {
            for (v, sealed) in docs.iter().zip(&sealed) {
                // A credential deleted meanwhile keeps no result, and one
                // updated meanwhile keeps its update's.
                tx.exec_drop(
                    "INSERT INTO credhost_validations (credential_id, doc) \
                     SELECT id, ? FROM credhost_credentials \
                     WHERE id = ? AND (? IS NULL OR updated_us = ?) \
                     ON DUPLICATE KEY UPDATE doc = VALUES(doc)",
                    (sealed, v.id, v.made_on, v.made_on),
                )?;
            }
            Ok(())
        })
    }

    fn validations(&self, ids: &[u64]) -> Result<Vec<(u64, String)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut found = Vec::new();
        let mut conn = self.conn()?;
        for part in ids.chunks(500) {
            let sql = format!(
                "SELECT credential_id, doc FROM credhost_validations WHERE credential_id IN ({})",
                in_list(part.len())
            );
            let values: Vec<Value> = part.iter().map(|&id| id.into()).collect();
            let rows: Vec<(u64, Vec<u8>)> = conn.exec(sql, values).map_err(backend)?;
            let mac = self.mac()?;
            for (id, stored) in rows {
                match mac.open(VALIDATION, id.to_string().as_bytes(), &stored) {
                    Some(doc) => found.push((id, String::from_utf8_lossy(doc).into_owned())),
                    // Bare JSON: written before records were sealed.
                    None if stored.starts_with(b"{") => {
                        tracing::debug!(credential = id, "an unsealed validation: ignored");
                    }
                    None => tracing::error!(
                        credential = id,
                        "a validation row does not verify: ignored"
                    ),
                }
            }
        }
        // In the order asked for, as the embedded store answers.
        let found: HashMap<u64, String> = found.into_iter().collect();
        Ok(ids
            .iter()
            .filter_map(|id| found.get(id).map(|doc| (*id, doc.clone())))
            .collect())
    }

    fn tokens(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows: Vec<(Vec<u8>, Vec<u8>)> = self
            .conn()?
            .query("SELECT id, doc FROM credhost_tokens ORDER BY id")
            .map_err(backend)?;
        let mac = self.mac()?;
        let mut tokens = Vec::with_capacity(rows.len());
        for (id, stored) in rows {
            let id = String::from_utf8_lossy(&id).into_owned();
            // One that does not verify was not written by a server: it
            // grants nothing.
            match mac.open(TOKEN, id.as_bytes(), &stored) {
                Some(doc) => tokens.push((id, String::from_utf8_lossy(doc).into_owned())),
                None => tracing::error!(token = ?id, "a token row does not verify: ignored"),
            }
        }
        Ok(tokens)
    }

    fn put_token(&self, id: &str, doc: &str) -> Result<(), StoreError> {
        let stored = self.mac()?.seal(TOKEN, id.as_bytes(), doc.as_bytes());
        self.conn()?
            .exec_drop(
                // A revocation is final: a server whose copy is older
                // (noting a last use) must not write an unrevoked document
                // over a revoked one. Both are the same serializer's
                // compact JSON, behind their tags.
                "INSERT INTO credhost_tokens (id, doc) VALUES (?, ?) \
                 ON DUPLICATE KEY UPDATE doc = IF(LOCATE('\"revoked_us\":null', doc) = 0 \
                   AND LOCATE('\"revoked_us\":null', VALUES(doc)) > 0, doc, VALUES(doc))",
                (id.as_bytes(), stored),
            )
            .map_err(backend)
    }
}

/// Before a write's next attempt: a random pause that doubles with each
/// attempt. Writers that deadlocked on each other (servers creating the
/// shared keyring's first key at once, say) would otherwise start again
/// together and deadlock again.
fn retry_pause(attempt: usize) {
    let ceiling_ms = 4u64 << attempt.min(6);
    std::thread::sleep(std::time::Duration::from_micros(rand::random_range(
        0..ceiling_ms * 1000,
    )));
}

/// Keeps `doc` as credential `id`'s last validation, in the write `tx`.
fn put_validation(tx: &mut Tx, id: u64, sealed: &[u8]) -> Result<(), Abort> {
    tx.exec_drop(
        "INSERT INTO credhost_validations (credential_id, doc) VALUES (?, ?) \
         ON DUPLICATE KEY UPDATE doc = VALUES(doc)",
        (id, sealed),
    )?;
    Ok(())
}
