//! How to reach the shared database: `mysql://user@host:port/db`, the
//! password kept out of the URL, TLS when asked for.

use std::path::PathBuf;
use std::time::Duration;

use mysql::{Opts, OptsBuilder, PoolConstraints, PoolOpts, SslOpts};
use serde::Deserialize;

use crate::store::StoreError;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreTls {
    /// Connect over TLS (required, never downgraded).
    pub enabled: bool,
    /// CA certificate (PEM) the database's certificate must chain to;
    /// without it, the system's roots.
    pub ca: Option<PathBuf>,
    /// Accept a certificate whose name is not the host's (a database
    /// reached by IP address with a certificate for its name).
    pub skip_domain_validation: bool,
}

pub struct StoreOptions<'a> {
    pub url: &'a str,
    pub password: Option<&'a str>,
    pub tls: &'a StoreTls,
    pub max_connections: usize,
}

/// Seconds a statement may wait on the network before the database counts
/// as unreachable.
pub(super) const IO_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the async pool keeps a connection nobody uses.
const IDLE_CONNECTION_TTL: Duration = Duration::from_secs(60);

impl StoreOptions<'_> {
    pub fn opts(&self) -> Result<Opts, StoreError> {
        let parsed =
            Opts::from_url(self.url).map_err(|e| StoreError::Backend(format!("store URL: {e}")))?;
        if parsed.get_db_name().is_none_or(str::is_empty) {
            return Err(StoreError::Backend(
                "store URL names no database: mysql://user@host:port/database".into(),
            ));
        }
        let mut builder = OptsBuilder::from_opts(parsed)
            .read_timeout(Some(IO_TIMEOUT))
            .write_timeout(Some(IO_TIMEOUT))
            .tcp_connect_timeout(Some(CONNECT_TIMEOUT))
            .tcp_nodelay(true)
            .prefer_socket(false)
            .pool_opts(
                PoolOpts::default()
                    // Nothing depends on session state, and not every
                    // MySQL-protocol server implements the reset command.
                    .with_reset_connection(false)
                    .with_constraints(
                        PoolConstraints::new(0, self.max_connections.max(1))
                            .expect("0 ≤ max connections"),
                    ),
            );
        if let Some(password) = self.password {
            builder = builder.pass(Some(password));
        }
        if self.tls.enabled {
            let mut ssl = SslOpts::default()
                .with_danger_skip_domain_validation(self.tls.skip_domain_validation);
            if let Some(ca) = &self.tls.ca {
                ssl = ssl.with_root_cert_path(Some(ca.clone()));
            }
            builder = builder.ssl_opts(ssl);
        }
        Ok(builder.into())
    }

    /// The same connection settings for the async driver's pool. Its
    /// statements have no socket timeouts: `reads.rs` bounds each read.
    pub fn async_opts(&self) -> Result<mysql_async::Opts, StoreError> {
        use mysql_async::{OptsBuilder, PoolConstraints, PoolOpts, SslOpts};
        let parsed = mysql_async::Opts::from_url(self.url)
            .map_err(|e| StoreError::Backend(format!("store URL: {e}")))?;
        let mut builder = OptsBuilder::from_opts(parsed)
            .tcp_nodelay(true)
            .prefer_socket(false)
            .pool_opts(
                PoolOpts::default()
                    .with_reset_connection(false)
                    // Without a time to live, the pool closes every idle
                    // connection above its minimum: a connection per read.
                    .with_inactive_connection_ttl(IDLE_CONNECTION_TTL)
                    .with_constraints(
                        PoolConstraints::new(0, self.max_connections.max(1))
                            .expect("0 ≤ max connections"),
                    ),
            );
        if self.password.is_some() {
            builder = builder.pass(self.password);
        }
        if self.tls.enabled {
            let ca = self.tls.ca.iter().map(|ca| ca.clone().into()).collect();
            builder = builder.ssl_opts(
                SslOpts::default()
                    .with_danger_skip_domain_validation(self.tls.skip_domain_validation)
                    .with_root_certs(ca),
            );
        }
        Ok(builder.into())
    }
}

/// The URL as logs may show it: without a password, should it hold one.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_url_is_never_shown() {
        assert_eq!(
            redacted("mysql://app:s3cret@db:3306/credhost"),
            "mysql://app@db:3306/credhost"
        );
        assert_eq!(
            redacted("mysql://app@db:3306/credhost"),
            "mysql://app@db:3306/credhost"
        );
    }

    #[test]
    fn a_url_without_a_database_is_refused() {
        let tls = StoreTls::default();
        let options = StoreOptions {
            url: "mysql://app@127.0.0.1:3306",
            password: None,
            tls: &tls,
            max_connections: 4,
        };
        assert!(options.opts().is_err());
    }

    /// The async pool connects as the blocking one does, and keeps its
    /// idle connections (without a time to live it opened one per read).
    #[test]
    fn the_async_pool_has_the_same_settings_and_keeps_connections() {
        let tls = StoreTls {
            enabled: true,
            ca: Some("/etc/credhost/db-ca.pem".into()),
            skip_domain_validation: false,
        };
        let options = StoreOptions {
            url: "mysql://app@127.0.0.1:3306/credhost",
            password: Some("from-the-file"),
            tls: &tls,
            max_connections: 12,
        };
        let opts = options.async_opts().unwrap();
        assert_eq!(opts.pass(), Some("from-the-file"));
        assert_eq!(opts.user(), Some("app"));
        assert_eq!(opts.db_name(), Some("credhost"));
        assert!(opts.tcp_nodelay());
        assert_eq!(opts.pool_opts().constraints().max(), 12);
        assert!(opts.pool_opts().inactive_connection_ttl() >= Duration::from_secs(10));
        let ssl = opts.ssl_opts().expect("TLS asked for");
        assert!(!ssl.skip_domain_validation());
        assert_eq!(ssl.root_certs().len(), 1);

        // A password in the URL stays when no other is given.
        let plain = StoreTls::default();
        let options = StoreOptions {
            url: "mysql://app:in-url@127.0.0.1:3306/credhost",
            password: None,
            tls: &plain,
            max_connections: 4,
        };
        let opts = options.async_opts().unwrap();
        assert_eq!(opts.pass(), Some("in-url"));
        assert!(opts.ssl_opts().is_none());
    }
}
