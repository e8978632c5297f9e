//! What servers sharing the database coordinate through: headers already
//! used, leases, heartbeats, and blobs every server must hold the same.

use mysql::prelude::Queryable;

use super::{MysqlStore, backend};
use crate::store::{Coordination, ServerRow, StoreError};

const DUPLICATE_KEY: u16 = super::DUPLICATE_KEY;

impl Coordination for MysqlStore {
    fn first_use(&self, digest: &[u8; 32], expiry: u64, now: u64) -> Result<bool, StoreError> {
        // One statement, on every authenticated request: a new digest is
        // inserted (1 row affected), an expired one taken over (2), a live
        // one left alone (0: seen before).
        let mut conn = self.conn()?;
        conn.exec_drop(
            "INSERT INTO credhost_replay (digest, expires) VALUES (?, ?) \
             ON DUPLICATE KEY UPDATE expires = IF(expires < ?, VALUES(expires), expires)",
            (&digest[..], expiry, now),
        )
        .map_err(backend)?;
        Ok(conn.affected_rows() > 0)
    }

    fn forget_used(&self, margin_secs: u64) -> Result<u64, StoreError> {
        let mut conn = self.conn()?;
        let mut forgotten = 0;
        // In bounded steps, so no statement holds many locks for long.
        loop {
            conn.exec_drop(
                "DELETE FROM credhost_replay WHERE expires < UNIX_TIMESTAMP() - ? LIMIT 10000",
                (margin_secs,),
            )
            .map_err(backend)?;
            let step = conn.affected_rows();
            forgotten += step;
            if step < 10_000 {
                return Ok(forgotten);
            }
        }
    }

    fn hold_lease(&self, name: &str, holder: &str, ttl_ms: u64) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        // In one transaction, on the database's clock (servers' clocks may
        // disagree): read the row locked, then take, renew or leave it.
        let mut tx = conn
            .start_transaction(mysql::TxOpts::default())
            .map_err(backend)?;
        let now: i64 = tx
            .query_first("SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)")
            .map_err(backend)?
            .unwrap_or(0);
        let until = now + (ttl_ms as i64) * 1000;
        let row: Option<(Vec<u8>, i64)> = tx
            .exec_first(
                "SELECT holder, expires_us FROM credhost_leases WHERE name = ? FOR UPDATE",
                (name.as_bytes(),),
            )
            .map_err(backend)?;
        let ours = match row {
            None => {
                // Two servers inserting at once: one gets a duplicate key
                // and simply does not hold it.
                match tx.exec_drop(
                    "INSERT INTO credhost_leases (name, holder, expires_us) VALUES (?, ?, ?)",
                    (name.as_bytes(), holder.as_bytes(), until),
                ) {
                    Ok(()) => true,
                    Err(e) if super::code(&e) == Some(DUPLICATE_KEY) => false,
                    Err(e) => return Err(backend(e)),
                }
            }
            Some((current, expires)) if current == holder.as_bytes() || expires < now => {
                tx.exec_drop(
                    "UPDATE credhost_leases SET holder = ?, expires_us = ? WHERE name = ?",
                    (holder.as_bytes(), until, name.as_bytes()),
                )
                .map_err(backend)?;
                true
            }
            Some(_) => false,
        };
        tx.commit().map_err(backend)?;
        Ok(ours)
    }

    fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.conn()?
            .exec_drop(
                "DELETE FROM credhost_leases WHERE name = ? AND holder = ?",
                (name.as_bytes(), holder.as_bytes()),
            )
            .map_err(backend)
    }

    fn heartbeat(&self, server: &ServerRow) -> Result<(), StoreError> {
        self.conn()?
            .exec_drop(
                "INSERT INTO credhost_servers \
                   (id, address, version, started_us, heartbeat_us, plugins_hash, plugins) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) \
                 ON DUPLICATE KEY UPDATE address = VALUES(address), version = VALUES(version), \
                   heartbeat_us = VALUES(heartbeat_us), plugins_hash = VALUES(plugins_hash), \
                   plugins = VALUES(plugins)",
                (
                    server.id.as_bytes(),
                    server.address.as_bytes(),
                    server.version.as_bytes(),
                    server.started_us,
                    server.heartbeat_us,
                    server.plugins_hash.as_bytes(),
                    server.plugins.as_bytes(),
                ),
            )
            .map_err(backend)
    }

    fn servers(&self) -> Result<Vec<ServerRow>, StoreError> {
        type Row = (Vec<u8>, Vec<u8>, Vec<u8>, i64, i64, Vec<u8>, Vec<u8>);
        let rows: Vec<Row> = self
            .conn()?
            .query(
                "SELECT id, address, version, started_us, heartbeat_us, plugins_hash, plugins \
                 FROM credhost_servers ORDER BY id",
            )
            .map_err(backend)?;
        let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        Ok(rows
            .into_iter()
            .map(
                |(id, address, version, started_us, heartbeat_us, hash, plugins)| ServerRow {
                    id: text(id),
                    address: text(address),
                    version: text(version),
                    started_us,
                    heartbeat_us,
                    plugins_hash: text(hash),
                    plugins: text(plugins),
                },
            )
            .collect())
    }

    fn forget_servers(&self, before_us: i64) -> Result<(), StoreError> {
        self.conn()?
            .exec_drop(
                "DELETE FROM credhost_servers WHERE heartbeat_us < ?",
                (before_us,),
            )
            .map_err(backend)
    }

    fn blob(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn()?
            .exec_first(
                "SELECT value FROM credhost_blobs WHERE name = ?",
                (name.as_bytes(),),
            )
            .map_err(backend)
    }

    fn blob_or_insert(
        &self,
        name: &str,
        make: &mut dyn FnMut() -> Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        if let Some(value) = self.blob(name)? {
            return Ok(value);
        }
        // Servers starting together each make one; the first insert wins
        // and everyone reads it back.
        self.conn()?
            .exec_drop(
                "INSERT IGNORE INTO credhost_blobs (name, value) VALUES (?, ?)",
                (name.as_bytes(), make()),
            )
            .map_err(backend)?;
        self.blob(name)?
            .ok_or_else(|| StoreError::Backend(format!("blob {name} vanished")))
    }
}
