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
    /// CA certificate (PEM) the database's certificate may chain to, on
    /// top of the public roots (the driver that writes always trusts
    /// those; the one that reads trusts only this CA when it is set).
    pub ca: Option<PathBuf>,
    /// Refused: with the public roots trusted, accepting any name would
    /// accept any publicly issued certificate. Kept to say so rather than
    /// to call the setting unknown.
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
/// Run on every connection: the server's default may have turned the
/// checks off, and key retirement counts on the foreign key.
const ENFORCE_FOREIGN_KEYS: &str = "SET foreign_key_checks = 1";
/// How long the async pool keeps a connection nobody uses.
const IDLE_CONNECTION_TTL: Duration = Duration::from_secs(60);

impl StoreOptions<'_> {
    /// Whether the link to the database may carry its password and rows:
    /// over TLS that checks the database's name, or in clear on loopback
    /// (or anywhere with `allow_plaintext`). Checked before any connection.
    pub fn check_transport(&self, allow_plaintext: bool) -> Result<(), StoreError> {
        let url = redacted(self.url);
        // A URL is given on command lines and in process listings, which
        // every user of the machine may read.
        let parsed =
            Opts::from_url(self.url).map_err(|e| StoreError::Backend(format!("store URL: {e}")))?;
        if parsed.get_pass().is_some() {
            return Err(StoreError::Backend(format!(
                "the store URL {url} holds a password: take it out, and give it in \
                 CREDHOST_STORE_PASSWORD or as store_password in the settings file"
            )));
        }
        if self.tls.skip_domain_validation {
            return Err(StoreError::Backend(format!(
                "refusing store_tls.skip_domain_validation for {url}: the database's certificate \
                 must name the host or address in the URL (an IP address needs it as a subject \
                 alternative name)"
            )));
        }
        if !self.tls.enabled && !allow_plaintext && !self.opts()?.addr_is_loopback() {
            return Err(StoreError::Backend(format!(
                "refusing to reach the store {url} without TLS: enable TLS (with its CA), or allow \
                 plaintext to accept that anyone on the path reads the database traffic"
            )));
        }
        Ok(())
    }

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
            .init(vec![ENFORCE_FOREIGN_KEYS])
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
            let mut ssl = SslOpts::default();
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
            .init(vec![ENFORCE_FOREIGN_KEYS])
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
                    .with_root_certs(ca)
                    .with_disable_built_in_roots(self.tls.ca.is_some()),
            );
        }
        Ok(builder.into())
    }
}

/// The URL as logs may show it: scheme, user, host, port and database;
/// never a password, in the userinfo or the query. A URL that does not
/// parse shows only its scheme, since where its password ends is unclear.
pub fn redacted(url: &str) -> String {
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    match reqwest::Url::parse(url) {
        Ok(parsed) if parsed.has_host() => {
            let user = match parsed.username() {
                "" => String::new(),
                user => format!("{user}@"),
            };
            let host = parsed.host_str().unwrap_or_default();
            let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{scheme}://{user}{host}{port}{}", parsed.path())
        }
        _ => format!("{scheme}://…"),
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
        assert_eq!(
            redacted("mysql://app@db:3306/credhost?password=s3cret&x=@y"),
            "mysql://app@db:3306/credhost"
        );
        // A `?` or `#` in an unescaped password ends the URL's authority
        // early: nothing of it may show.
        for url in [
            "mysql://app:pa?ss@db/credhost",
            "mysql://app:pa#ss@db/credhost",
        ] {
            let shown = redacted(url);
            assert!(!shown.contains("pa"), "{shown}");
        }
    }

    /// Only parsed, never dialled: the refusals come before a connection.
    #[test]
    fn plaintext_beyond_loopback_and_unchecked_names_are_refused() {
        let check = |url: &str, tls: StoreTls, allow_plaintext: bool| {
            StoreOptions {
                url,
                password: None,
                tls: &tls,
                max_connections: 1,
            }
            .check_transport(allow_plaintext)
            .map_err(|e| e.to_string())
        };
        let remote = "mysql://app@10.0.0.5:3306/credhost";
        let refused = check(remote, StoreTls::default(), false).unwrap_err();
        assert!(refused.contains("without TLS"), "{refused}");
        assert!(check(remote, StoreTls::default(), true).is_ok());
        assert!(check("mysql://app@127.0.0.1/credhost", StoreTls::default(), false).is_ok());
        let tls = StoreTls {
            enabled: true,
            ..StoreTls::default()
        };
        assert!(check(remote, tls.clone(), false).is_ok());
        let unchecked = StoreTls {
            skip_domain_validation: true,
            ..tls
        };
        let refused = check(remote, unchecked, true).unwrap_err();
        assert!(refused.contains("skip_domain_validation"), "{refused}");
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
        // With a CA of its own, the public roots are no longer trusted.
        assert!(ssl.disable_built_in_roots());

        // A password in the URL is refused, wherever the URL came from.
        let plain = StoreTls::default();
        let options = StoreOptions {
            url: "mysql://app:in-url@127.0.0.1:3306/credhost",
            password: None,
            tls: &plain,
            max_connections: 4,
        };
        let refused = options.check_transport(true).unwrap_err().to_string();
        assert!(refused.contains("holds a password"), "{refused}");
        assert!(!refused.contains("in-url"), "{refused}");
    }
}
