//! obshell's "API hybrid encryption": an RSA-encrypted `X-OCS-Header` that
//! carries the password, an expiry, the request target and an AES key, and a
//! body encrypted with that key.
//!
//! What an attacker without the password meets here:
//! - every header that cannot be read (bad Base64, partial or too many
//!   blocks, bad padding, not the expected JSON) gets one answer, and the
//!   RSA decryption itself cannot tell bad padding from good (implicit
//!   rejection, see `keys::transport`);
//! - the RSA work runs on a small pool of its own, never on the async
//!   workers, bounded per client address, and an address that keeps failing
//!   is slowed down before any of it is spent;
//! - a header is accepted once, identified by what it says (see `replay`),
//!   so a captured one cannot be reused, for the same method or another;
//! - expiries far ahead are refused and the password is compared in
//!   constant time.

mod body;
mod clients;
mod header;
mod pace;
mod pool;
mod replay;
mod replay_journal;
mod scopes;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::errors::ApiError;
use super::observe::Note;
use crate::keys::TransportKey;
use crate::secret::Secret;
use crate::service::{Principal, Service};

pub use body::open as open_body;
pub use clients::ClientLimits;
pub use header::{Claims, MAX_BLOCKS, blocks as header_blocks, claims as header_claims};
pub use pace::PaceLimits;

pub const HEADER: &str = "x-ocs-header";
pub const AGENT_HEADER: &str = "x-ocs-agent-header";

/// An encrypted body may be this large (Base64 of the 1 MiB plaintext limit).
const MAX_SEALED_BODY: usize = (super::decode::MAX_BODY / 3 + 1) * 4 + 64;
/// Live headers remembered against replay; past it new ones wait.
const REPLAY_CAPACITY: usize = 1 << 20;
/// Headers waiting for the RSA pool before new ones are answered "busy".
const RSA_QUEUE: usize = 1024;

/// The address a request came from, set by the connection that carried it.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

pub struct Authenticator {
    pool: pool::RsaPool,
    password: Option<Secret>,
    /// Where bearer tokens are looked up; without it they are refused.
    tokens: Option<Arc<Service>>,
    tokens_over_plain_http: bool,
    tls: bool,
    /// How far in the future a header's expiry may lie.
    horizon: Duration,
    replay: replay::ReplayCache,
    /// Servers sharing a database refuse a header any of them accepted.
    shared_replay: Option<Arc<dyn crate::store::Coordination>>,
    journal: Option<replay_journal::ReplayJournal>,
    clients: Arc<clients::Clients>,
    pace: pace::Pace,
}

impl Authenticator {
    pub fn new(
        key: TransportKey,
        password: Option<Secret>,
        horizon: Duration,
        limits: ClientLimits,
    ) -> Self {
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        Self {
            pool: pool::RsaPool::new(Arc::new(key), threads, RSA_QUEUE),
            password,
            tokens: None,
            tokens_over_plain_http: false,
            tls: false,
            horizon,
            replay: replay::ReplayCache::new(REPLAY_CAPACITY),
            shared_replay: None,
            journal: None,
            clients: clients::Clients::new(limits),
            pace: pace::Pace::new(PaceLimits::UNLIMITED),
        }
    }

    /// Holds each token, and each client using the password, to `limits`.
    pub fn with_pace(mut self, limits: PaceLimits) -> Self {
        self.pace = pace::Pace::new(limits);
        self
    }

    /// Keeps the headers accepted in `path` too, so they stay refused
    /// after a restart (for a server without a shared store).
    pub fn with_replay_journal(mut self, path: &std::path::Path) -> std::io::Result<Self> {
        self.journal = Some(replay_journal::ReplayJournal::open(
            path,
            &self.replay,
            now(),
            self.horizon.as_secs(),
        )?);
        Ok(self)
    }

    /// Writes out and syncs the headers accepted so far (a server that
    /// stops); false if that did not happen within `within`.
    pub fn flush_replay_journal(&self, within: Duration) -> bool {
        self.journal.as_ref().is_none_or(|j| j.flush(within))
    }

    /// Records accepted headers in the shared database too, so that no
    /// other server of the cluster accepts one again.
    pub fn with_shared_replay(mut self, coordination: Arc<dyn crate::store::Coordination>) -> Self {
        self.shared_replay = Some(coordination);
        self
    }

    /// Accepts `Authorization: Bearer` tokens of `service`: over TLS, on
    /// loopback, or (with `over_plain_http`) anywhere.
    pub fn with_tokens(mut self, service: Arc<Service>, tls: bool, over_plain_http: bool) -> Self {
        self.tokens = Some(service);
        self.tls = tls;
        self.tokens_over_plain_http = over_plain_http;
        self
    }

    pub fn public_key_base64(&self) -> &str {
        self.pool.key().public_base64()
    }

    pub fn password_set(&self) -> bool {
        self.password.is_some()
    }
}

fn unauthorized(err_code: &str, message: impl Into<String>, code: i64) -> ApiError {
    let mut error = ApiError::new(StatusCode::UNAUTHORIZED, err_code, message);
    error.code = Some(code);
    error
}

fn replayed() -> ApiError {
    unauthorized(
        "Security.Authentication.Replayed",
        "Unauthorized: this request header was already used",
        10008,
    )
}

/// The one answer to every header that cannot be read.
fn unreadable() -> ApiError {
    unauthorized(
        "Security.Authentication.Header.DecryptFailed",
        "Decrypt http header failed",
        1,
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Authenticator {
    fn check(&self, claims: &Claims, target: &str, agent_header: bool) -> Result<u64, ApiError> {
        if claims.uri.as_deref() != Some(target) {
            return Err(unauthorized(
                "Security.Authentication.Header.UriMismatch",
                "URI mismatch",
                10008,
            ));
        }
        let now = now();
        let mut expiry = now + self.horizon.as_secs();
        // obshell skips the expiry for an empty `auth`; so do we, but only
        // when no password is configured (then there is nothing to protect).
        if self.password.is_some() || !claims.auth.is_empty() {
            let ts = claims.ts.as_deref().unwrap_or("");
            // Never quote a claim back: the header's blocks are decrypted
            // one by one and joined, so a block captured from someone
            // else's header, put after a block of the attacker's own that
            // opens `ts`, would be decrypted into this message.
            expiry = ts.trim().parse().map_err(|_| {
                unauthorized(
                    "Security.Authentication.Timestamp.Invalid",
                    "Unauthorized: Invalid timestamp",
                    10008,
                )
            })?;
            if expiry < now {
                return Err(unauthorized(
                    "Security.Authentication.Expired",
                    "Unauthorized: Authentication expired",
                    10008,
                ));
            }
            if expiry > now + self.horizon.as_secs() {
                return Err(unauthorized(
                    "Security.Authentication.Timestamp.Invalid",
                    format!(
                        "Unauthorized: Invalid timestamp: expiry is more than {} s ahead",
                        self.horizon.as_secs()
                    ),
                    10008,
                ));
            }
        }
        // Digests of equal length, compared in constant time: neither the
        // content nor the length of the password shows in the timing.
        let expected = self.password.as_ref().map_or(&[][..], Secret::expose);
        let given: [u8; 32] = Sha256::digest(claims.auth.as_bytes()).into();
        let wanted: [u8; 32] = Sha256::digest(expected).into();
        if !bool::from(given.ct_eq(&wanted)) {
            let (err_code, message) = if agent_header {
                (
                    "Security.Authentication.IncorrectAgentPassword",
                    "Unauthorized: Agent password is incorrect",
                )
            } else {
                (
                    "Security.Authentication.IncorrectOceanbasePassword",
                    "Unauthorized: OceanBase password is incorrect",
                )
            };
            return Err(unauthorized(err_code, message, 10008));
        }
        Ok(expiry)
    }

    /// Refuses a header this server saw before; returns what identifies it.
    fn first_use(
        &self,
        claims: &Claims,
        blocks: &[u8],
        ends: &[usize],
        expiry: u64,
    ) -> Result<Vec<[u8; 32]>, ApiError> {
        // Without a password: its `keys`, or else all its claims. With one:
        // the blocks whose plaintext overlaps the password's value, and its
        // `keys` as well, so neither may come back.
        let mut ids = Vec::with_capacity(2);
        if claims.auth.is_empty() || claims.keys.is_some() {
            ids.push(replay::identity(
                claims.keys.as_deref(),
                &claims.auth,
                claims.ts.as_deref(),
                claims.uri.as_deref(),
            ));
        }
        if !claims.auth.is_empty() {
            let block_len = self.pool.key().block_len();
            let span = &claims.auth_span;
            let starts = std::iter::once(0).chain(ends.iter().copied());
            let holding = starts
                .zip(ends.iter().copied())
                .enumerate()
                .filter(|(_, (start, end))| *start < span.end && span.start < *end)
                .map(|(i, _)| &blocks[i * block_len..(i + 1) * block_len]);
            ids.push(replay::password_blocks(holding));
        }
        let now = now();
        ids.iter()
            .try_for_each(|id| self.replay.first_use(*id, expiry, now))
            .map_err(|refused| match refused {
                replay::Refused::Replayed => replayed(),
                replay::Refused::Full => {
                    ApiError::unavailable("too many authenticated requests are still valid", 1)
                }
            })?;
        if let Some(journal) = &self.journal {
            for id in &ids {
                journal.note(*id, expiry);
            }
        }
        Ok(ids)
    }

    /// The cluster-wide check, after this server's own.
    async fn first_use_shared(&self, ids: Vec<[u8; 32]>, expiry: u64) -> Result<(), ApiError> {
        let Some(shared) = self.shared_replay.clone() else {
            return Ok(());
        };
        let now = now();
        let fresh = tokio::task::spawn_blocking(move || {
            ids.iter().try_fold(true, |fresh, id| {
                Ok::<_, crate::store::StoreError>(fresh && shared.first_use(id, expiry, now)?)
            })
        })
        .await
        .map_err(|_| ApiError::unavailable("the server is shutting down", 1))?
        .map_err(|e| ApiError::unavailable(format!("cannot check for replay: {e}"), 1))?;
        if fresh { Ok(()) } else { Err(replayed()) }
    }

    /// Decrypts and checks the header. Every refusal here counts as a
    /// failure of the client's address.
    async fn verify(
        &self,
        ticket: &clients::Ticket,
        value: &[u8],
        target: &str,
        agent_header: bool,
    ) -> Result<Claims, ApiError> {
        let blocks =
            header::blocks(value, self.pool.key().block_len()).map_err(|_| unreadable())?;
        let answer = self
            .pool
            .decrypt(blocks.clone(), ticket.suspect())
            .map_err(|_| ApiError::unavailable("the server is busy authenticating", 1))?;
        let plain = answer
            .await
            .map_err(|_| ApiError::unavailable("the server is shutting down", 1))?;
        if plain.has_empty_block() {
            return Err(unreadable());
        }
        let claims = header::claims(&plain.bytes).map_err(|_| unreadable())?;
        let expiry = self.check(&claims, target, agent_header)?;
        let ids = self.first_use(&claims, &blocks, &plain.ends, expiry)?;
        self.first_use_shared(ids, expiry).await?;
        Ok(claims)
    }
}

/// Routes anyone may call: how a client learns to authenticate.
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/api/v1/info" | "/api/v1/secret" | "/api/v1/openapi.json"
    ) || super::console::is_console(path)
}

/// Set on requests that came through the server's Unix socket in the data
/// directory: only the directory's owner can open it.
#[derive(Debug, Clone, Copy)]
pub struct LocalSocket;

pub async fn authenticate(
    State(auth): State<Arc<Authenticator>>,
    request: Request,
    next: Next,
) -> Response {
    let note = request.extensions().get::<Note>().cloned();
    let route = request.extensions().get::<MatchedPath>().cloned();
    if let (Some(note), Some(route)) = (&note, &route) {
        note.set_route(route);
    }
    let outcome = admit(&auth, request).await;
    let (principal, mut request) = match outcome {
        Ok(admitted) => admitted,
        Err((error, THROTTLED)) => {
            if let Some(note) = &note {
                note.set_throttled();
            }
            return error.into_response();
        }
        Err((error, kind)) => {
            metrics::counter!("credhost_auth_failures_total", "kind" => kind).increment(1);
            // Credentials looked at and refused (not absent, throttled or
            // unreadable as a request): what the audit log must not lose
            // among junk (see `audit::unauthenticated`).
            if let Some(note) = &note
                && !matches!(kind, "header_missing" | "body" | "busy" | "rate_limited")
            {
                note.set_credentials_refused();
            }
            return error.into_response();
        }
    };
    if let Some(note) = &note {
        note.set_principal(&principal);
    }
    let route = route.as_ref().map(MatchedPath::as_str);
    let needed = scopes::needed(request.method(), route.unwrap_or(""));
    if !principal.may(needed) {
        metrics::counter!("credhost_auth_failures_total", "kind" => "scope").increment(1);
        return ApiError::forbidden(
            "Security.Token.InsufficientScope",
            format!(
                "Forbidden: this token's scope is {}; {} {} needs {}",
                principal.scope().as_str(),
                request.method(),
                route.unwrap_or("this route"),
                needed.as_str()
            ),
        )
        .into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

type Refused = (ApiError, &'static str);

/// The kind of a refusal for going past the caller's rate.
const THROTTLED: &str = "throttled";

impl Authenticator {
    /// Counts a request of `principal` from `client` against its rate
    /// (see `pace`).
    fn pace(&self, principal: &Principal, client: IpAddr) -> Result<(), Refused> {
        self.pace
            .admit(principal, client, std::time::Instant::now())
            .map_err(|retry_after| {
                metrics::counter!("credhost_requests_throttled_total",
                    "principal" => principal.kind())
                .increment(1);
                (
                    ApiError::too_many(
                        "Common.TooManyRequests",
                        "too many requests from this caller; slow down and retry after the time given",
                        retry_after,
                    ),
                    THROTTLED,
                )
            })
    }
}

/// Who sent the request, and the request with its body decrypted.
async fn admit(auth: &Authenticator, request: Request) -> Result<(Principal, Request), Refused> {
    if is_public(request.uri().path()) {
        return Ok((Principal::Anonymous, request));
    }
    if request.extensions().get::<LocalSocket>().is_some() {
        return Ok((Principal::Local, request));
    }
    let client = request
        .extensions()
        .get::<ClientAddr>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    if let Some(value) = request.headers().get(axum::http::header::AUTHORIZATION) {
        let value = value.as_bytes().to_vec();
        let principal = auth.bearer(&value, client).await?;
        if let Err(refused) = auth.pace(&principal, client) {
            // Whose requests went too fast is worth its record.
            if let Some(note) = request.extensions().get::<Note>() {
                note.set_principal(&principal);
            }
            return Err(refused);
        }
        return Ok((principal, request));
    }
    let headers = request.headers();
    let (value, agent_header) = match (headers.get(AGENT_HEADER), headers.get(HEADER)) {
        (Some(agent), _) => (agent.as_bytes().to_vec(), true),
        (None, Some(plain)) => (plain.as_bytes().to_vec(), false),
        (None, None) if !auth.password_set() => return Ok((Principal::Anonymous, request)),
        (None, None) => {
            return Err((
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "Request.Header.NotFound",
                    "X-OCS-Agent-Header or X-OCS-Header not found in http request header",
                ),
                "header_missing",
            ));
        }
    };
    // Paced before any RSA work or replay bookkeeping, which a request
    // refused afterwards would still have cost (the header's author is
    // known only then; the rate is the client's, whoever it is).
    auth.pace(&Principal::V2Password, client)?;
    let mut ticket = auth.ticket(client)?;
    let target = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_string(),
        |pq| pq.as_str().to_string(),
    );
    let claims = match auth.verify(&ticket, &value, &target, agent_header).await {
        Ok(claims) => claims,
        Err(error) => {
            if error.status == StatusCode::UNAUTHORIZED {
                ticket.failed();
            }
            let kind = failure_kind(&error);
            return Err((error, kind));
        }
    };
    drop(ticket);
    if let Some(note) = request.extensions().get::<Note>()
        && let Some(keys) = &claims.keys
    {
        note.set_header_keys(keys);
    }
    let principal = if auth.password_set() {
        Principal::V2Password
    } else {
        Principal::Anonymous
    };

    let (parts, body) = request.into_parts();
    let sealed = axum::body::to_bytes(body, MAX_SEALED_BODY)
        .await
        .map_err(|_| (ApiError::illegal("request body is too large"), "body"))?;
    let plain = if sealed.iter().all(u8::is_ascii_whitespace) {
        Vec::new()
    } else {
        body::open(claims.keys.as_deref(), &sealed)
            .map_err(|e| (e, "body"))?
            .to_vec()
    };
    Ok((principal, Request::from_parts(parts, Body::from(plain))))
}

/// The metric label of a refused header.
fn failure_kind(error: &ApiError) -> &'static str {
    match error.err_code.as_str() {
        "Security.Authentication.Header.DecryptFailed" => "header_unreadable",
        "Security.Authentication.Header.UriMismatch" => "uri_mismatch",
        "Security.Authentication.Expired" | "Security.Authentication.Timestamp.Invalid" => {
            "timestamp"
        }
        "Security.Authentication.Replayed" => "replayed",
        "Security.Authentication.IncorrectAgentPassword"
        | "Security.Authentication.IncorrectOceanbasePassword" => "wrong_password",
        _ if error.status == StatusCode::SERVICE_UNAVAILABLE => "busy",
        _ => "other",
    }
}

impl Authenticator {
    /// Admission of one more attempt from `client`, unless it failed too
    /// often lately or has too many in flight.
    fn ticket(&self, client: IpAddr) -> Result<clients::Ticket, Refused> {
        self.clients.admit(client).map_err(|refusal| match refusal {
            clients::Refusal::Failures { retry_after } => (
                ApiError::too_many(
                    "Security.Authentication.TooManyFailures",
                    "Unauthorized: too many failed authentications from this address; try again later",
                    retry_after,
                ),
                "rate_limited",
            ),
            clients::Refusal::Busy => (
                ApiError::too_many(
                    "Security.Authentication.TooManyRequests",
                    "too many requests from this address are being authenticated at once",
                    1,
                ),
                "busy",
            ),
        })
    }

    /// `Authorization: Bearer <token>`. Every token that is not good gets
    /// the same answer, and counts as a failure of the address.
    async fn bearer(&self, value: &[u8], client: IpAddr) -> Result<Principal, Refused> {
        let invalid = || {
            (
                unauthorized(
                    "Security.Authentication.Token.Invalid",
                    "Unauthorized: the token is unknown, expired or revoked",
                    10008,
                ),
                "token_invalid",
            )
        };
        let Some(service) = &self.tokens else {
            return Err(invalid());
        };
        if !(self.tls || self.tokens_over_plain_http || client.is_loopback()) {
            return Err((
                ApiError::forbidden(
                    "Security.Authentication.Token.InsecureTransport",
                    "Forbidden: API tokens are accepted only over HTTPS or on loopback; \
                     this token has crossed the network in clear and should be revoked",
                ),
                "token_insecure_transport",
            ));
        }
        let token = std::str::from_utf8(value)
            .ok()
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .unwrap_or("");
        // A good token is known at the cost of a hash, and is let in however
        // many failures its address has made: others behind the same
        // address (a NAT, a /64, this machine) cannot lock its holder out.
        // Only a token not good here takes a ticket and counts.
        if let Ok(principal) = service.authenticate_token(token) {
            return Ok(principal);
        }
        let mut ticket = self.ticket(client)?;
        match service.authenticate_token_anywhere(token).await {
            Ok(principal) => Ok(principal),
            Err(refused) => {
                ticket.failed();
                tracing::debug!(%client, "bearer token refused: {refused}");
                let (error, _) = invalid();
                Err((error, refused.kind()))
            }
        }
    }
}
