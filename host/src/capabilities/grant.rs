//! The network endpoints one plugin call may reach: exactly the targets of the
//! credential being verified, nothing else (no name lookups, no listening),
//! and each only so often in one verification.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use wasmtime_wasi::sockets::SocketAddrUse;

use super::HostKeys;
use super::log::SharedLog;
use super::private_key::KeyCache;
use crate::plugins::Scrubber;

#[derive(Debug, Clone, Default)]
pub struct Grant {
    endpoints: Arc<HashSet<SocketAddr>>,
    /// Which server keys the endpoints may present before a secret is sent.
    host_keys: HostKeys,
    /// Private keys read for the verification this call is part of.
    keys: KeyCache,
    /// How often that verification reached each endpoint. A request tries
    /// its secret once per target (the guess limit counts on it), however
    /// many times a plugin was handed the target or asks again. None in a
    /// grant of no endpoints (every quick call's): nothing to count.
    reached: Option<Arc<Mutex<HashMap<SocketAddr, Reached>>>>,
    /// The secret being proven, kept out of what the plugin logs.
    scrubber: Option<Arc<Scrubber>>,
    /// What the verification's calls may still log, together (none: each
    /// call its own).
    log: Option<SharedLog>,
}

#[derive(Debug, Default)]
struct Reached {
    logins: u32,
    connections: u32,
}

/// Logins through the `ssh` capability per endpoint and verification.
pub const MAX_LOGINS_PER_TARGET: u32 = 1;
/// Connections a plugin opens itself per endpoint and verification: a
/// protocol may need one to probe and one to log in, or a retry; and a
/// 0.3 call that connects before it asks runs again from the start after
/// each of its (at most four) asks.
pub const MAX_CONNECTIONS_PER_TARGET: u32 = 8;

impl Grant {
    pub fn new(endpoints: impl IntoIterator<Item = SocketAddr>, host_keys: HostKeys) -> Self {
        Self {
            endpoints: Arc::new(endpoints.into_iter().collect()),
            host_keys,
            keys: KeyCache::default(),
            reached: Some(Arc::default()),
            scrubber: None,
            log: None,
        }
    }

    /// The same grant for the call of one of the verification's targets,
    /// reaching `endpoint` alone, with a count of its own (a target listed
    /// twice is two calls); the host keys, the keys read, the masking and
    /// the log budget stay shared with the other targets' calls.
    pub fn narrowed_to(&self, endpoint: SocketAddr) -> Self {
        Self {
            endpoints: Arc::new(HashSet::from([endpoint])),
            reached: Some(Arc::default()),
            ..self.clone()
        }
    }

    /// The same grant, its calls' log lines counted against `log`.
    pub fn logging_into(self, log: SharedLog) -> Self {
        Self {
            log: Some(log),
            ..self
        }
    }

    pub fn log(&self) -> Option<&SharedLog> {
        self.log.as_ref()
    }

    /// The same grant, for a call that holds the secret `scrubber` masks:
    /// a plugin that logs what it was given does not put it in the log.
    pub fn scrubbing(self, scrubber: Arc<Scrubber>) -> Self {
        Self {
            scrubber: Some(scrubber),
            ..self
        }
    }

    /// Whether the call's secret is known and masked as it logs.
    pub fn masks(&self) -> bool {
        self.scrubber.is_some()
    }

    /// `text` with the secret of the call masked.
    pub fn scrub(&self, text: String) -> String {
        match &self.scrubber {
            Some(scrubber) => scrubber.apply(text),
            None => text,
        }
    }

    pub fn keys(&self) -> &KeyCache {
        &self.keys
    }

    /// A credential's targets, behind the host keys the call accepts.
    pub fn for_targets(targets: &[crate::plugins::Target], host_keys: HostKeys) -> Self {
        Self::new(
            targets.iter().map(|t| SocketAddr::new(t.ip, t.port)),
            host_keys,
        )
    }

    pub fn host_keys(&self) -> &HostKeys {
        &self.host_keys
    }

    /// No network at all.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn permits(&self, endpoint: &SocketAddr) -> bool {
        self.endpoints.contains(endpoint)
    }

    /// Counts a login at `endpoint`; false once the verification made
    /// its one.
    pub fn take_login(&self, endpoint: &SocketAddr) -> bool {
        self.take(endpoint, |r| &mut r.logins, MAX_LOGINS_PER_TARGET)
    }

    fn take_connection(&self, endpoint: &SocketAddr) -> bool {
        self.take(endpoint, |r| &mut r.connections, MAX_CONNECTIONS_PER_TARGET)
    }

    fn take(
        &self,
        endpoint: &SocketAddr,
        count: impl FnOnce(&mut Reached) -> &mut u32,
        max: u32,
    ) -> bool {
        let Some(reached) = &self.reached else {
            return false;
        };
        let mut reached = reached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = count(reached.entry(*endpoint).or_default());
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The check WASI sockets run before every bind and connect.
    pub fn socket_check(
        &self,
    ) -> impl Fn(SocketAddr, SocketAddrUse) -> Pin<Box<dyn Future<Output = bool> + Send + Sync>>
    + Send
    + Sync
    + 'static {
        let grant = self.clone();
        // One warning per call: a plugin repeating a refused use must not
        // flood the host's log.
        let warned = std::sync::atomic::AtomicBool::new(false);
        move |addr, usage| {
            let allowed = match usage {
                SocketAddrUse::TcpConnect => grant.permits(&addr) && grant.take_connection(&addr),
                // A connect binds implicitly to the wildcard address first.
                SocketAddrUse::TcpBind => addr.ip().is_unspecified() && addr.port() == 0,
                _ => false,
            };
            if !allowed {
                const REFUSED: &str = "plugin socket use outside its grant, or past its connections to a target, refused";
                if warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    tracing::debug!(%addr, ?usage, "{REFUSED}");
                } else {
                    tracing::warn!(%addr, ?usage, "{REFUSED}");
                }
            }
            Box::pin(std::future::ready(allowed))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_exactly_the_listed_endpoints() {
        let a: SocketAddr = "127.0.0.1:2222".parse().unwrap();
        let grant = Grant::new([a], HostKeys::default());
        assert!(grant.permits(&a));
        assert!(!grant.permits(&"127.0.0.1:2223".parse().unwrap()));
        assert!(!grant.permits(&"127.0.0.2:2222".parse().unwrap()));
        assert!(Grant::none().is_empty());
    }

    #[tokio::test]
    async fn socket_check_allows_connect_only_to_the_grant() {
        let a: SocketAddr = "127.0.0.1:2222".parse().unwrap();
        let check = Grant::new([a], HostKeys::default()).socket_check();
        assert!(check(a, SocketAddrUse::TcpConnect).await);
        assert!(!check("127.0.0.1:80".parse().unwrap(), SocketAddrUse::TcpConnect).await);
        assert!(check("0.0.0.0:0".parse().unwrap(), SocketAddrUse::TcpBind).await);
        assert!(!check("127.0.0.1:2222".parse().unwrap(), SocketAddrUse::TcpBind).await);
        assert!(!check(a, SocketAddrUse::TcpListen).await);
        assert!(!check(a, SocketAddrUse::UdpSend).await);
    }
}
