//! Password logins over SSH (russh), fanned out concurrently with a bound on
//! concurrency and on the time each phase may take.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use russh::client;
use russh::keys::PublicKeyOrCertificate;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::timeout;

use super::Grant;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SshSettings {
    /// TCP connect, in milliseconds.
    pub connect_timeout_ms: u64,
    /// SSH version exchange and key exchange, in milliseconds.
    pub handshake_timeout_ms: u64,
    /// Password authentication and opening a session channel, in milliseconds.
    pub auth_timeout_ms: u64,
    /// Logins in flight at once, across all requests.
    pub max_concurrent: usize,
}

impl Default for SshSettings {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 5_000,
            handshake_timeout_ms: 10_000,
            auth_timeout_ms: 10_000,
            max_concurrent: 256,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    AuthFailed,
    Refused,
    Unreachable,
    Timeout,
    ProtocolError,
    NotGranted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginResult {
    pub target: SocketAddr,
    pub outcome: Outcome,
    /// Free of secrets: built from error kinds and the peer's replies only.
    pub message: String,
}

impl LoginResult {
    fn new(target: SocketAddr, outcome: Outcome, message: impl Into<String>) -> Self {
        Self {
            target,
            outcome,
            message: message.into(),
        }
    }
}

/// Curve25519 first: every OpenSSH since 6.5 has it and it is the cheapest
/// to compute, which matters when hundreds of logins run at once. The
/// post-quantum hybrid and the finite-field groups stay as fallbacks.
const KEX_ORDER: &[russh::kex::Name] = &[
    russh::kex::CURVE25519,
    russh::kex::CURVE25519_PRE_RFC_8731,
    russh::kex::MLKEM768X25519_SHA256,
    russh::kex::DH_GEX_SHA256,
    russh::kex::DH_G16_SHA512,
    russh::kex::DH_G14_SHA256,
    russh::kex::EXTENSION_SUPPORT_AS_CLIENT,
    russh::kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
];

#[derive(Clone)]
pub struct SshClient {
    settings: Arc<SshSettings>,
    config: Arc<client::Config>,
    in_flight: Arc<Semaphore>,
}

impl SshClient {
    pub fn new(settings: SshSettings) -> Self {
        let config = client::Config {
            inactivity_timeout: Some(Duration::from_millis(settings.auth_timeout_ms)),
            preferred: russh::Preferred {
                kex: std::borrow::Cow::Borrowed(KEX_ORDER),
                ..Default::default()
            },
            ..Default::default()
        };
        Self {
            in_flight: Arc::new(Semaphore::new(settings.max_concurrent.max(1))),
            settings: Arc::new(settings),
            config: Arc::new(config),
        }
    }

    pub fn settings(&self) -> &SshSettings {
        &self.settings
    }

    /// Logs in to every target concurrently; one result per target, in order.
    /// A target outside `grant` is answered `NotGranted` without a packet sent.
    pub async fn login_all(
        &self,
        grant: &Grant,
        targets: &[SocketAddr],
        username: &str,
        password: &str,
    ) -> Vec<LoginResult> {
        join_all(targets.iter().map(|target| async move {
            if !grant.permits(target) {
                return LoginResult::new(
                    *target,
                    Outcome::NotGranted,
                    "target is not among this credential's targets",
                );
            }
            let _permit = self.in_flight.acquire().await.expect("never closed");
            self.login(*target, username, password).await
        }))
        .await
    }

    async fn login(&self, target: SocketAddr, username: &str, password: &str) -> LoginResult {
        let s = &self.settings;
        let stream = match timeout(
            Duration::from_millis(s.connect_timeout_ms),
            TcpStream::connect(target),
        )
        .await
        {
            Err(_) => {
                return LoginResult::new(
                    target,
                    Outcome::Timeout,
                    format!("connect timed out after {} ms", s.connect_timeout_ms),
                );
            }
            Ok(Err(e)) => return connect_error(target, &e),
            Ok(Ok(stream)) => stream,
        };
        // Small handshake packets must not wait for Nagle and delayed ACKs
        // (40 ms a round); russh only sets this on sockets it opens itself.
        let _ = stream.set_nodelay(true);
        let handshake = timeout(
            Duration::from_millis(s.handshake_timeout_ms),
            client::connect_stream(self.config.clone(), stream, AcceptAnyHostKey),
        )
        .await;
        let mut session = match handshake {
            Err(_) => {
                return LoginResult::new(
                    target,
                    Outcome::Timeout,
                    format!(
                        "SSH handshake timed out after {} ms",
                        s.handshake_timeout_ms
                    ),
                );
            }
            Ok(Err(e)) => {
                return LoginResult::new(
                    target,
                    Outcome::ProtocolError,
                    format!("SSH handshake failed: {e}"),
                );
            }
            Ok(Ok(session)) => session,
        };
        let auth = timeout(Duration::from_millis(s.auth_timeout_ms), async {
            let auth = session.authenticate_password(username, password).await?;
            if !auth.success() {
                return Ok(false);
            }
            // obshell counts a login as good once a session channel opens.
            let channel = session.channel_open_session().await?;
            let _ = channel.close().await;
            Ok::<_, russh::Error>(true)
        })
        .await;
        let result = match auth {
            Err(_) => LoginResult::new(
                target,
                Outcome::Timeout,
                format!(
                    "SSH authentication timed out after {} ms",
                    s.auth_timeout_ms
                ),
            ),
            Ok(Ok(true)) => LoginResult::new(target, Outcome::Success, ""),
            Ok(Ok(false)) => LoginResult::new(
                target,
                Outcome::AuthFailed,
                "ssh: unable to authenticate: the server rejected the username or password",
            ),
            Ok(Err(e)) => LoginResult::new(
                target,
                Outcome::ProtocolError,
                format!("SSH session failed: {e}"),
            ),
        };
        let _ = session
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
        result
    }
}

fn connect_error(target: SocketAddr, e: &io::Error) -> LoginResult {
    let outcome = match e.kind() {
        io::ErrorKind::ConnectionRefused => Outcome::Refused,
        io::ErrorKind::TimedOut => Outcome::Timeout,
        _ => Outcome::Unreachable,
    };
    LoginResult::new(target, outcome, format!("dial tcp {target}: {e}"))
}

/// obshell does not check host keys either; pinning is future work (the
/// `host-key-mismatch` reason is reserved for it).
struct AcceptAnyHostKey;

impl client::Handler for AcceptAnyHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}
