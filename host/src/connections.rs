//! Accepting connections and serving HTTP/1.1 on them, with the bounds a
//! slow or greedy client must not get past: a cap on connections, overall
//! and per client address; a deadline for reading a request's headers
//! (slowloris); a cap on their size. Each request carries the address it
//! came from, for the per-address limits of authentication.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::api::auth::ClientAddr;

#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max: usize,
    pub per_client: usize,
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
}

/// The client an address belongs to: an IPv4 address, or an IPv6 /64 (the
/// least a host is given, so one host cannot pass for many).
pub fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::from(octets)
            }
        },
    }
}

/// Counts a connection closed at once for `cap`: the only trace of a cap
/// that bites (the client sees a closed socket).
pub fn refused(cap: &'static str) {
    metrics::counter!("credhost_connections_refused_total", "cap" => cap).increment(1);
}

/// A token bucket: up to `burst` tokens, refilled continuously at
/// `per_second`. The per-client limits are made of these.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    updated: std::time::Instant,
    per_second: f64,
    burst: f64,
}

impl Bucket {
    pub fn full(burst: f64, per_second: f64, now: std::time::Instant) -> Self {
        Self {
            tokens: burst,
            updated: now,
            per_second,
            burst,
        }
    }

    /// The tokens as last brought up to date.
    pub fn tokens(&self) -> f64 {
        self.tokens
    }

    fn at(&self, now: std::time::Instant) -> f64 {
        let seconds = now.saturating_duration_since(self.updated).as_secs_f64();
        (self.tokens + seconds * self.per_second).min(self.burst)
    }

    /// Brings the bucket up to `now`; returns its tokens.
    pub fn refill(&mut self, now: std::time::Instant) -> f64 {
        self.tokens = self.at(now);
        // A caller that read the clock before waiting on a lock brings an
        // earlier `now`: moving back would count the same time twice.
        self.updated = self.updated.max(now);
        self.tokens
    }

    /// Takes a token, if there is one.
    pub fn spend(&mut self) {
        self.tokens = (self.tokens - 1.0).max(0.0);
    }

    /// Returns a token taken for something that turned out free.
    pub fn give_back(&mut self) {
        self.tokens = (self.tokens + 1.0).min(self.burst);
    }

    /// Whether it would be full at `now`: as good as a new one.
    pub fn is_full_at(&self, now: std::time::Instant) -> bool {
        self.at(now) >= self.burst
    }

    /// How long since it was last brought up to date.
    pub fn idle_for(&self, now: std::time::Instant) -> Duration {
        now.saturating_duration_since(self.updated)
    }
}

/// Entries by client that cannot grow past a bound: when the table is full,
/// a new client first makes the table sweep out the entries `keep` lets go
/// (at most once a second, so a table kept full costs no sweep per
/// request), and if that makes no room it shares one entry with all others
/// that find it full.
pub struct ClientTable<E> {
    entries: HashMap<IpAddr, E>,
    swept: Option<std::time::Instant>,
}

/// Where clients go that find a table full: an address of the discard-only
/// prefix 100::/64, which no client has (`::`, the /64 of `::1`, would
/// lump local clients in with them).
const OVERFLOW: IpAddr = IpAddr::V6(std::net::Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0));

impl<E> Default for ClientTable<E> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            swept: None,
        }
    }
}

impl<E> ClientTable<E> {
    /// The key and entry of `peer`'s client (made by `new` if absent).
    pub fn entry(
        &mut self,
        peer: IpAddr,
        max: usize,
        now: std::time::Instant,
        keep: impl FnMut(&IpAddr, &mut E) -> bool,
        new: impl FnOnce() -> E,
    ) -> (IpAddr, &mut E) {
        let mut key = client_of(peer);
        if !self.entries.contains_key(&key) && self.entries.len() >= max {
            let due = self
                .swept
                .is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1));
            if due {
                self.entries.retain(keep);
                self.swept = Some(now);
            }
            if self.entries.len() >= max {
                key = OVERFLOW;
            }
        }
        (key, self.entries.entry(key).or_insert_with(new))
    }

    pub fn get(&self, key: &IpAddr) -> Option<&E> {
        self.entries.get(key)
    }

    pub fn get_mut(&mut self, key: &IpAddr) -> Option<&mut E> {
        self.entries.get_mut(key)
    }

    /// Clients tracked (for tests of the bound).
    #[cfg(test)]
    pub fn clients(&self) -> usize {
        self.entries.len()
    }
}

/// Open connections (or handshakes) by client.
#[derive(Debug, Default)]
pub struct PerClient(Mutex<HashMap<IpAddr, usize>>);

/// The caps of one service's connections (or handshakes): all of them, and
/// each client's. Every listener of the service takes from the same caps
/// (the API answers on both loopback addresses), so they hold for the
/// service as a whole rather than once per address.
#[derive(Debug, Clone)]
pub struct Caps {
    total: Arc<Semaphore>,
    per_client: Arc<PerClient>,
    total_cap: usize,
    client_cap: usize,
}

/// A connection's places under its caps, given back when dropped.
pub struct Admitted {
    _total: tokio::sync::OwnedSemaphorePermit,
    _client: Slot,
}

/// Why a connection was refused, as metrics name it.
pub enum Over {
    Total,
    Client,
}

impl Caps {
    pub fn new(total: usize, per_client: usize) -> Self {
        Self {
            total: Arc::new(Semaphore::new(total.max(1))),
            per_client: Arc::new(PerClient::default()),
            total_cap: total.max(1),
            client_cap: per_client.max(1),
        }
    }

    /// Waits, up to `within`, until every place is given back, and gives
    /// out no more; says whether every one was.
    pub async fn drained(&self, within: Duration) -> bool {
        let all = self.total.acquire_many(self.total_cap as u32);
        match tokio::time::timeout(within, all).await {
            Ok(Ok(all)) => {
                all.forget();
                self.total.close();
                true
            }
            _ => false,
        }
    }

    /// Places for a connection from `peer`, if both caps allow it.
    pub fn admit(&self, peer: IpAddr) -> Result<Admitted, Over> {
        let total = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| Over::Total)?;
        let client = self
            .per_client
            .take(peer, self.client_cap)
            .ok_or(Over::Client)?;
        Ok(Admitted {
            _total: total,
            _client: client,
        })
    }
}

/// One client's place, given back when dropped.
pub struct Slot {
    table: Arc<PerClient>,
    ip: IpAddr,
}

impl PerClient {
    /// A place for the client of `peer`, if it holds fewer than `cap`.
    pub fn take(self: &Arc<Self>, peer: IpAddr, cap: usize) -> Option<Slot> {
        let ip = client_of(peer);
        let mut open = self.0.lock().expect("connection table lock");
        let count = open.entry(ip).or_default();
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(Slot {
            table: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.table.0.lock().expect("connection table lock");
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets the
/// requests in flight finish (for up to 30 s).
pub async fn serve<L>(
    mut listener: L,
    router: Router,
    limits: ConnectionLimits,
    caps: Caps,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) where
    L: Listener<Addr = SocketAddr>,
{
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes);
    tokio::pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        // Over a cap the connection is closed at once: cheaper for us than
        // keeping it waiting, and the client learns to back off.
        let admitted = match caps.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(Over::Total) => {
                tracing::debug!(%peer, "connection refused: too many connections");
                refused("connections");
                continue;
            }
            Err(Over::Client) => {
                tracing::debug!(%peer, "connection refused: too many from this address");
                refused("connections_per_client");
                continue;
            }
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ClientAddr(peer));
            router.clone().oneshot(request)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(io), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
            drop(admitted);
        });
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(30)) => {
            tracing::warn!("requests still running after 30 s; stopping anyway");
        }
    }
}
