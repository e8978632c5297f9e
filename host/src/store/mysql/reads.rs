//! Point reads through the async driver. A GET through the blocking driver
//! costs two hops between an async worker and the blocking pool, and a
//! thread parked on the socket while the database answers; on a busy
//! server those wake-ups, not the database, set the pace. Here the read is
//! a future on the worker that asked for it, and many wait at once on the
//! same thread.

use std::sync::OnceLock;

use mysql_async::prelude::Queryable;

use super::options::IO_TIMEOUT;
use super::{CONNECTION_WAIT, classify};
use crate::store::StoreError;

pub(super) struct Reads {
    opts: mysql_async::Opts,
    /// Made on the first read: the pool belongs to the runtime that uses
    /// it, and the store is also opened where none runs (`store copy`).
    pool: OnceLock<mysql_async::Pool>,
}

impl Reads {
    pub(super) fn new(opts: mysql_async::Opts) -> Self {
        Self {
            opts,
            pool: OnceLock::new(),
        }
    }

    /// The sealed body of row `id`, if there is one.
    pub(super) async fn body(&self, id: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let pool = self
            .pool
            .get_or_init(|| mysql_async::Pool::new(self.opts.clone()));
        let read = async {
            let mut conn = pool.get_conn().await?;
            conn.exec_first::<Vec<u8>, _, _>(
                "SELECT body FROM credhost_credentials WHERE id = ?",
                (id,),
            )
            .await
        };
        // The blocking driver's socket timeouts, as one bound on the read.
        match tokio::time::timeout(CONNECTION_WAIT + IO_TIMEOUT, read).await {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(e)) => Err(failed(e)),
            Err(_) => Err(classify(true, None, &"a read timed out")),
        }
    }
}

fn failed(e: mysql_async::Error) -> StoreError {
    match &e {
        mysql_async::Error::Server(server) => classify(false, Some(server.code), &e),
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => classify(true, None, &e),
        mysql_async::Error::Other(_) | mysql_async::Error::Url(_) => classify(false, None, &e),
    }
}
