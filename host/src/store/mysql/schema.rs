//! The shared database's schema, as numbered migrations applied in order at
//! start. A server takes a named lock first, so servers that start together
//! apply each migration once; every statement is idempotent (`IF NOT
//! EXISTS`), so a migration cut short by a crash is simply applied again.
//!
//! Only what MySQL, MariaDB, TiDB and OceanBase all accept: binary columns
//! (no character set or collation is ever named, so none can be refused),
//! plain secondary indexes, one foreign key.

use mysql::prelude::Queryable;

use super::{backend, now_us};
use crate::store::StoreError;

/// Each entry is one schema version: the statements that make it from the
/// one before.
const MIGRATIONS: &[&[&str]] = &[
    // 1: what one server needs.
    &[
        "CREATE TABLE IF NOT EXISTS credhost_sequences (
            name VARBINARY(32) NOT NULL PRIMARY KEY,
            next BIGINT UNSIGNED NOT NULL)",
        "INSERT IGNORE INTO credhost_sequences (name, next) VALUES ('credential', 1), ('key', 1)",
        "CREATE TABLE IF NOT EXISTS credhost_keys (
            id INT UNSIGNED NOT NULL PRIMARY KEY,
            created_us BIGINT NOT NULL,
            wrapped VARBINARY(512) NOT NULL)",
        "CREATE TABLE IF NOT EXISTS credhost_retired_keys (
            id INT UNSIGNED NOT NULL PRIMARY KEY,
            created_us BIGINT NOT NULL,
            retired_us BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS credhost_credentials (
            id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
            name_key VARBINARY(1024) NOT NULL,
            type_key VARBINARY(256) NOT NULL,
            created_us BIGINT NOT NULL,
            updated_us BIGINT NOT NULL,
            policy VARBINARY(255) NOT NULL,
            key_id INT UNSIGNED NOT NULL,
            haystack MEDIUMBLOB NOT NULL,
            body MEDIUMBLOB NOT NULL,
            UNIQUE KEY credhost_unique_name (name_key),
            KEY credhost_by_type (type_key, id),
            KEY credhost_by_created (created_us, id),
            KEY credhost_by_updated (updated_us, id),
            KEY credhost_by_sealing (policy, key_id, id),
            KEY credhost_by_key (key_id),
            CONSTRAINT credhost_sealed_by_a_live_key FOREIGN KEY (key_id) REFERENCES credhost_keys (id))",
        // The number of credentials, in shards so concurrent writers
        // rarely wait on one another: a page's total is read here, not
        // counted (a count of 100,000 rows takes tens of milliseconds).
        "CREATE TABLE IF NOT EXISTS credhost_counts (
            shard TINYINT UNSIGNED NOT NULL PRIMARY KEY,
            n BIGINT NOT NULL)",
        "INSERT IGNORE INTO credhost_counts (shard, n) VALUES
            (0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0), (7, 0),
            (8, 0), (9, 0), (10, 0), (11, 0), (12, 0), (13, 0), (14, 0), (15, 0)",
        "CREATE TABLE IF NOT EXISTS credhost_hosts (
            target_type VARBINARY(256) NOT NULL,
            ip VARBINARY(64) NOT NULL,
            credential_id BIGINT UNSIGNED NOT NULL,
            PRIMARY KEY (target_type, ip),
            KEY credhost_hosts_of (credential_id))",
        "CREATE TABLE IF NOT EXISTS credhost_settings (
            name VARBINARY(191) NOT NULL PRIMARY KEY,
            value MEDIUMBLOB NOT NULL)",
        "CREATE TABLE IF NOT EXISTS credhost_tokens (
            id VARBINARY(191) NOT NULL PRIMARY KEY,
            doc MEDIUMBLOB NOT NULL)",
        "CREATE TABLE IF NOT EXISTS credhost_validations (
            credential_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
            doc MEDIUMBLOB NOT NULL)",
        "CREATE TABLE IF NOT EXISTS credhost_blobs (
            name VARBINARY(64) NOT NULL PRIMARY KEY,
            value MEDIUMBLOB NOT NULL)",
    ],
    // 2: what servers sharing the database coordinate through.
    &[
        "CREATE TABLE IF NOT EXISTS credhost_replay (
            digest BINARY(32) NOT NULL PRIMARY KEY,
            expires BIGINT UNSIGNED NOT NULL,
            KEY credhost_replay_expiry (expires))",
        "CREATE TABLE IF NOT EXISTS credhost_leases (
            name VARBINARY(64) NOT NULL PRIMARY KEY,
            holder VARBINARY(128) NOT NULL,
            expires_us BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS credhost_servers (
            id VARBINARY(128) NOT NULL PRIMARY KEY,
            address VARBINARY(255) NOT NULL,
            version VARBINARY(64) NOT NULL,
            started_us BIGINT NOT NULL,
            heartbeat_us BIGINT NOT NULL,
            plugins_hash VARBINARY(64) NOT NULL,
            plugins MEDIUMBLOB NOT NULL)",
    ],
];

/// The version this server's code reads and writes.
pub const LATEST: u32 = MIGRATIONS.len() as u32;

const LOCK: &str = "credhost_migrations";
const LOCK_WAIT_SECS: u32 = 60;

/// The schema version the database is at (0: empty).
pub fn version(conn: &mut impl Queryable) -> Result<u32, StoreError> {
    conn.query_drop(
        "CREATE TABLE IF NOT EXISTS credhost_migrations (
            version INT UNSIGNED NOT NULL PRIMARY KEY,
            applied_us BIGINT NOT NULL)",
    )
    .map_err(backend)?;
    let top: Option<Option<u32>> = conn
        .query_first("SELECT MAX(version) FROM credhost_migrations")
        .map_err(backend)?;
    Ok(top.flatten().unwrap_or(0))
}

/// Applies the migrations after the database's version, up to `target`,
/// under the migration lock. Refuses a database newer than this server.
pub fn migrate(conn: &mut impl Queryable, target: u32) -> Result<u32, StoreError> {
    let target = target.min(LATEST);
    // The lock's name is global to the database server, and any of its
    // accounts may hold it: a schema already current takes no lock, so
    // that cannot stop a server from starting.
    let at = version(conn)?;
    if (target..=LATEST).contains(&at) {
        return Ok(at);
    }
    let locked: Option<Option<i64>> = conn
        .exec_first("SELECT GET_LOCK(?, ?)", (LOCK, LOCK_WAIT_SECS))
        .map_err(backend)?;
    if locked.flatten() != Some(1) {
        return Err(StoreError::Unavailable(format!(
            "another server held the migration lock for {LOCK_WAIT_SECS} s"
        )));
    }
    let outcome = apply(conn, target);
    let _ = conn.exec_drop("SELECT RELEASE_LOCK(?)", (LOCK,));
    outcome
}

fn apply(conn: &mut impl Queryable, target: u32) -> Result<u32, StoreError> {
    let mut at = version(conn)?;
    if at > LATEST {
        return Err(StoreError::Backend(format!(
            "the database's schema is version {at}, newer than this server's {LATEST}: \
             upgrade this server"
        )));
    }
    while at < target {
        for statement in MIGRATIONS[at as usize] {
            conn.query_drop(*statement).map_err(backend)?;
        }
        at += 1;
        conn.exec_drop(
            "INSERT IGNORE INTO credhost_migrations (version, applied_us) VALUES (?, ?)",
            (at, now_us()),
        )
        .map_err(backend)?;
        tracing::info!(version = at, "database schema migrated");
    }
    Ok(at)
}
