//! SSH logins (russh), with a password or a private key, for verifiers:
//! bounded in number (overall and per client) and in the time each phase
//! may take, and only to granted targets presenting an accepted host key.
//! Also the `ssh` interface of each contract version, wired here.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use russh::client;
use russh::keys::{PrivateKey, PublicKeyOrCertificate};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::time::timeout;
use zeroize::Zeroizing;

use super::key_signer::{KeySigner, SignError};
use super::{Grant, HostKeys, private_key};
use crate::budget::{Budget, Client};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SshSettings {
    /// TCP connect, in milliseconds.
    pub connect_timeout_ms: u64,
    /// SSH version exchange and key exchange, in milliseconds.
    pub handshake_timeout_ms: u64,
    /// Authentication and opening a session channel, in milliseconds.
    pub auth_timeout_ms: u64,
    /// Logins in flight at once, across all requests.
    pub max_concurrent: usize,
    /// Of those, how many one client's calls may hold (0: half).
    pub max_concurrent_per_client: usize,
    /// How long a login waits for a free slot before it gives up (a login
    /// runs inside a verification that already got its instance: this
    /// only bounds the queue behind other clients' logins).
    pub queue_wait_ms: u64,
    /// An OpenSSH `known_hosts` file whose keys pre-seed the pins: a target
    /// it names must present that key even on first contact.
    pub known_hosts: Option<std::path::PathBuf>,
}

impl Default for SshSettings {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 5_000,
            handshake_timeout_ms: 10_000,
            auth_timeout_ms: 10_000,
            max_concurrent: 256,
            max_concurrent_per_client: 0,
            queue_wait_ms: 30_000,
            known_hosts: None,
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
    /// The server's key is not the one pinned: nothing was sent.
    HostKeyMismatch,
    /// The private key could not be read: nothing was sent.
    BadKey,
}

/// What a login proves.
pub enum Proof<'a> {
    Password(&'a str),
    Key(Arc<PrivateKey>),
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

/// Host key signatures credhost accepts: russh's defaults without `ssh-rsa`,
/// whose signatures hash with SHA-1 (OpenSSH stopped offering it in 8.8).
/// An RSA host key still works under `rsa-sha2-512` or `rsa-sha2-256`; a
/// server that offers it only as `ssh-rsa` gets no login, and no secret.
fn host_key_order() -> Vec<russh::keys::Algorithm> {
    let sha1 = russh::keys::Algorithm::Rsa { hash: None };
    (russh::Preferred::DEFAULT.key.iter())
        .filter(|algorithm| **algorithm != sha1)
        .cloned()
        .collect()
}

#[derive(Clone)]
pub struct SshClient {
    settings: Arc<SshSettings>,
    config: Arc<client::Config>,
    in_flight: Arc<Budget>,
}

impl SshClient {
    pub fn new(settings: SshSettings) -> Self {
        let config = client::Config {
            inactivity_timeout: Some(Duration::from_millis(settings.auth_timeout_ms)),
            preferred: russh::Preferred {
                kex: std::borrow::Cow::Borrowed(KEX_ORDER),
                key: std::borrow::Cow::Owned(host_key_order()),
                ..Default::default()
            },
            ..Default::default()
        };
        Self {
            in_flight: Arc::new(Budget::new(
                "ssh",
                "SSH login slot",
                settings.max_concurrent,
                match settings.max_concurrent_per_client {
                    0 => settings.max_concurrent.div_ceil(2),
                    n => n,
                },
                Duration::from_millis(settings.queue_wait_ms),
            )),
            settings: Arc::new(settings),
            config: Arc::new(config),
        }
    }

    pub fn settings(&self) -> &SshSettings {
        &self.settings
    }

    /// Logs in to every target concurrently; one result per target, in order.
    pub async fn login_all(
        &self,
        grant: &Grant,
        client: &Client,
        targets: &[SocketAddr],
        username: &str,
        password: &str,
    ) -> Vec<LoginResult> {
        join_all(targets.iter().map(|target| {
            self.login_one(grant, client, *target, username, Proof::Password(password))
        }))
        .await
    }

    /// One login. A target outside `grant` is answered `NotGranted` without
    /// a packet sent.
    pub async fn login_one(
        &self,
        grant: &Grant,
        client: &Client,
        target: SocketAddr,
        username: &str,
        proof: Proof<'_>,
    ) -> LoginResult {
        if !grant.permits(&target) {
            return LoginResult::new(target, Outcome::NotGranted, NOT_GRANTED);
        }
        let _permit = match self.in_flight.acquire(client).await {
            Ok(permit) => permit,
            Err(busy) => {
                // Nothing was dialled: the server had no login slot.
                return LoginResult::new(target, Outcome::Timeout, busy.to_string());
            }
        };
        if !grant.take_login(&target) {
            return LoginResult::new(target, Outcome::NotGranted, TRIED);
        }
        self.login(target, grant.host_keys(), client, username, proof)
            .await
    }

    async fn login(
        &self,
        target: SocketAddr,
        host_keys: &HostKeys,
        client: &Client,
        username: &str,
        proof: Proof<'_>,
    ) -> LoginResult {
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
        let (stream, _hang_up) = match hang_up_when_done(stream) {
            Ok(pair) => pair,
            Err(e) => return connect_error(target, &e),
        };
        let checker = PinnedKey {
            target,
            host_keys: host_keys.clone(),
            refused: Arc::new(std::sync::Mutex::new(None)),
        };
        let refused = checker.refused.clone();
        let handshake = timeout(
            Duration::from_millis(s.handshake_timeout_ms),
            client::connect_stream(self.config.clone(), stream, checker),
        )
        .await;
        if let Some(why) = refused.lock().expect("host key verdict lock").take() {
            return LoginResult::new(target, Outcome::HostKeyMismatch, why);
        }
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
                    format!("SSH handshake failed: {}", plain(&e)),
                );
            }
            Ok(Ok(session)) => session,
        };
        let auth = timeout(Duration::from_millis(s.auth_timeout_ms), async {
            let auth = match &proof {
                Proof::Password(password) => {
                    session.authenticate_password(username, *password).await?
                }
                Proof::Key(key) => {
                    // RSA keys sign with the best hash the server takes.
                    let hash = if key.algorithm().is_rsa() {
                        session.best_supported_rsa_hash().await?.flatten()
                    } else {
                        None
                    };
                    session
                        .authenticate_publickey_with(
                            username,
                            key.public_key().clone(),
                            hash,
                            &mut KeySigner::new(key.clone(), client.clone()),
                        )
                        .await
                        .map_err(|e| match e {
                            SignError::Session(_) => russh::Error::SendError,
                            SignError::Sign => {
                                russh::Error::Signature(russh::keys::signature::Error::new())
                            }
                        })?
                }
            };
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
                match proof {
                    Proof::Password(_) => {
                        "ssh: unable to authenticate: the server rejected the username or password"
                    }
                    Proof::Key(_) => {
                        "ssh: unable to authenticate: the server rejected the username or key"
                    }
                },
            ),
            Ok(Err(e)) => LoginResult::new(
                target,
                Outcome::ProtocolError,
                format!("SSH session failed: {}", plain(&e)),
            ),
        };
        // A server that stops reading must not keep the login's slot: the
        // goodbye gets the handshake's bound, and the session is dropped
        // either way. `disconnect` only queues it: the session task sends
        // it and then ends, before the socket is hung up on.
        let _ = timeout(Duration::from_millis(s.handshake_timeout_ms), async {
            let _ = session
                .disconnect(russh::Disconnect::ByApplication, "", "en")
                .await;
            let _ = (&mut session).await;
        })
        .await;
        result
    }
}

/// The login's socket, shut down when the login ends, however it ends.
/// russh runs a session in a task of its own, which notices that nobody
/// waits on it only between packets of a key exchange: a server that sends
/// an ignored packet every few seconds would keep the task, and its
/// socket, alive long after the login gave up on it.
struct HangUp(std::net::TcpStream);

impl Drop for HangUp {
    fn drop(&mut self) {
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }
}

/// `stream`, and a second handle on its socket that hangs up when dropped.
fn hang_up_when_done(stream: TcpStream) -> io::Result<(TcpStream, HangUp)> {
    let stream = stream.into_std()?;
    let handle = stream.try_clone()?;
    Ok((TcpStream::from_std(stream)?, HangUp(handle)))
}

/// What went wrong, in our words only. A server chooses the text of some
/// russh errors (the algorithm lists it offers, a key type it names): quoted
/// back, it would write into answers and stored verdicts, and the masking
/// of stored secrets in messages would tell it which of the guesses it
/// sent was the password.
fn plain(e: &russh::Error) -> String {
    use russh::Error as E;
    match e {
        E::NoCommonAlgo { kind, .. } => {
            let what = match kind {
                russh::AlgorithmKind::Kex => "key exchange",
                russh::AlgorithmKind::Key => "host key",
                russh::AlgorithmKind::Cipher => "cipher",
                russh::AlgorithmKind::Compression => "compression",
                russh::AlgorithmKind::Mac => "MAC",
            };
            format!("the server offers no {what} algorithm this client accepts")
        }
        E::Keys(_) | E::SshKey(_) | E::SshEncoding(_) | E::Signature(_) | E::Utf8(_) => {
            "the server sent a key, signature or name that cannot be read".into()
        }
        E::IO(io) => format!("connection error: {}", io.kind()),
        E::Disconnect | E::HUP => "the server closed the connection".into(),
        E::ConnectionTimeout | E::KeepaliveTimeout | E::InactivityTimeout | E::Elapsed(_) => {
            "the server stopped answering".into()
        }
        E::Version => "the server's version line is not SSH 2".into(),
        E::Kex | E::KexInit | E::StrictKeyExchangeViolation { .. } => {
            "the key exchange with the server failed".into()
        }
        E::UnknownKey | E::WrongServerSig => "the server's host key could not be checked".into(),
        E::PacketAuth | E::DecryptionError | E::PacketSize(_) => {
            "the server sent a packet that does not check out".into()
        }
        E::ChannelOpenFailure(_) => "the server refused a session channel".into(),
        E::NoAuthMethod | E::UnsupportedAuthMethod => {
            "the server offers no authentication method this client can use".into()
        }
        // Whatever else russh may say, in words of our own: some of its
        // messages carry numbers the server chose.
        _ => "SSH protocol error".into(),
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

/// Checks the server's key against the call's pins during the key
/// exchange: a refused key ends the connection before authentication, so
/// no password is ever sent to it.
struct PinnedKey {
    target: SocketAddr,
    host_keys: HostKeys,
    refused: Arc<std::sync::Mutex<Option<String>>>,
}

impl client::Handler for PinnedKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(cert) => cert.public_key().clone().into(),
        };
        let blob = key
            .to_bytes()
            .map_err(|e| russh::Error::from(russh::keys::Error::from(e)))?;
        match self
            .host_keys
            .check(self.target, key.algorithm().as_str(), &blob)
        {
            Ok(()) => Ok(true),
            Err(why) => {
                *self.refused.lock().expect("host key verdict lock") = Some(why);
                Ok(false)
            }
        }
    }
}

// ---- The `ssh` interface of each contract version ----

use crate::plugins::bindings::{v0_1, v0_2, v0_3};
use crate::plugins::state::CallState;

fn address(ip: &str, port: u16) -> Option<SocketAddr> {
    ip.parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, port))
}

const NOT_GRANTED: &str = "target is not among this credential's targets";
const NO_SSH: &str = "ssh is not lent to this call";
const TRIED: &str = "not tried again: this verification logged in to this target already";

/// An unparseable ip can never be in the grant: an address refused
/// without being dialled stands in for it.
const NOWHERE: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::UNSPECIFIED,
    0,
));

/// What a login needs of the call, taken out of it: the call's state is not
/// `Sync`, so it cannot be borrowed across the login's awaits. A 0.3
/// plugin's asks are answered between its calls, by a `Lent` of the call.
pub struct Lent {
    ssh: Option<SshClient>,
    grant: Grant,
    client: Client,
}

/// Work a plugin asks the host for (contract 0.3), in the host's terms.
pub enum Ask {
    Login {
        ip: String,
        port: u16,
        username: String,
        proof: AskedProof,
    },
    KeyFacts(AskedKey),
}

pub enum AskedProof {
    Password(Zeroizing<String>),
    Key(AskedKey),
}

/// A private key as a plugin passed it.
pub struct AskedKey {
    pub text: Zeroizing<String>,
    pub passphrase: Option<Zeroizing<String>>,
}

pub enum Answer {
    Login(LoginResult),
    /// The key's type and fingerprint, or why it cannot be read.
    KeyFacts(Result<(String, String), String>),
}

impl Lent {
    fn of(state: &CallState) -> Self {
        Self::new(state.ssh.clone(), state.grant.clone(), state.client.clone())
    }

    /// `ssh`: `None` where the call may reach nothing (logins then answer
    /// `not-granted`).
    pub fn new(ssh: Option<SshClient>, grant: Grant, client: Client) -> Self {
        Self { ssh, grant, client }
    }

    pub async fn answer(&self, ask: Ask) -> Answer {
        match ask {
            Ask::Login {
                ip,
                port,
                username,
                proof,
            } => Answer::Login(match proof {
                AskedProof::Password(password) => {
                    self.login(&ip, port, &username, Proof::Password(&password))
                        .await
                }
                AskedProof::Key(key) => self.key_login(&ip, port, &username, key).await,
            }),
            Ask::KeyFacts(key) => Answer::KeyFacts(
                self.read(key)
                    .await
                    .map(|key| private_key::fingerprint(&key)),
            ),
        }
    }

    async fn read(&self, key: AskedKey) -> Result<Arc<PrivateKey>, String> {
        let AskedKey { text, passphrase } = key;
        self.grant.keys().read(&self.client, text, passphrase).await
    }

    /// A key login. What the login would refuse unread (no SSH lent, a
    /// target outside the grant) is refused before the key is read: a
    /// plugin must not get keys parsed, and reading slots taken, for
    /// logins it may not make.
    async fn key_login(&self, ip: &str, port: u16, username: &str, key: AskedKey) -> LoginResult {
        let target = address(ip, port).unwrap_or(NOWHERE);
        if let Some(refused) = self.refusal(target) {
            return refused;
        }
        match self.read(key).await {
            Ok(key) => self.login(ip, port, username, Proof::Key(key)).await,
            Err(why) => LoginResult::new(target, Outcome::BadKey, why),
        }
    }

    async fn login(&self, ip: &str, port: u16, username: &str, proof: Proof<'_>) -> LoginResult {
        let target = address(ip, port).unwrap_or(NOWHERE);
        match &self.ssh {
            Some(ssh) => {
                ssh.login_one(&self.grant, &self.client, target, username, proof)
                    .await
            }
            None => LoginResult::new(target, Outcome::NotGranted, NO_SSH),
        }
    }

    /// The answer to a login this call may not make, if it may not.
    fn refusal(&self, target: SocketAddr) -> Option<LoginResult> {
        let why = if self.ssh.is_none() {
            NO_SSH
        } else if !self.grant.permits(&target) {
            NOT_GRANTED
        } else {
            return None;
        };
        Some(LoginResult::new(target, Outcome::NotGranted, why))
    }
}

pub fn link(linkers: &mut super::Linkers) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    v0_1::verifier::credhost::plugin::ssh::add_to_linker::<_, HasSelf<CallState>>(
        &mut linkers.verifier_v0_1,
        |s| s,
    )?;
    v0_2::verifier::credhost::plugin::ssh::add_to_linker::<_, HasSelf<CallState>>(
        &mut linkers.verifier_v0_2,
        |s| s,
    )?;
    // 0.3's `ssh` has types only: its asks come back in the exports' answers.
    v0_3::verifier::credhost::plugin::ssh::add_to_linker::<_, HasSelf<CallState>>(
        &mut linkers.verifier_v0_3,
        |s| s,
    )?;
    Ok(())
}

mod wit_0_1 {
    use super::*;
    use v0_1::verifier::credhost::plugin::ssh::{Host, LoginResult as Wit, Outcome as O};
    use v0_1::verifier::credhost::plugin::types::Target;

    fn outcome(o: Outcome) -> O {
        match o {
            Outcome::Success => O::Success,
            Outcome::AuthFailed => O::AuthFailed,
            Outcome::Refused => O::Refused,
            Outcome::Unreachable => O::Unreachable,
            Outcome::Timeout => O::Timeout,
            Outcome::ProtocolError | Outcome::BadKey => O::ProtocolError,
            Outcome::HostKeyMismatch => O::HostKeyMismatch,
            Outcome::NotGranted => O::NotGranted,
        }
    }

    impl Host for CallState {
        async fn password_login(
            &mut self,
            targets: Vec<Target>,
            username: String,
            password: String,
        ) -> wasmtime::Result<Vec<Wit>> {
            // No credential has more targets: a longer list is a plugin
            // making the host hold a login's state for each entry.
            if targets.len() > crate::service::MAX_TARGETS {
                wasmtime::bail!(
                    "password-login with {} targets: a credential has at most {}",
                    targets.len(),
                    crate::service::MAX_TARGETS
                );
            }
            let lent = Lent::of(self);
            let results = join_all(targets.into_iter().map(|target| {
                let (lent, username, password) = (&lent, &username, &password);
                async move {
                    let r = lent
                        .login(&target.ip, target.port, username, Proof::Password(password))
                        .await;
                    Wit {
                        target,
                        outcome: outcome(r.outcome),
                        message: r.message,
                    }
                }
            }))
            .await;
            Ok(results)
        }
    }
}

/// `outcome(o)`: the host's outcome as a typed contract's (0.2 and later
/// name every outcome).
macro_rules! typed_outcome {
    ($wit:ident) => {
        fn outcome(o: Outcome) -> $wit {
            match o {
                Outcome::Success => $wit::Success,
                Outcome::AuthFailed => $wit::AuthFailed,
                Outcome::Refused => $wit::Refused,
                Outcome::Unreachable => $wit::Unreachable,
                Outcome::Timeout => $wit::Timeout,
                Outcome::ProtocolError => $wit::ProtocolError,
                Outcome::BadKey => $wit::BadKey,
                Outcome::HostKeyMismatch => $wit::HostKeyMismatch,
                Outcome::NotGranted => $wit::NotGranted,
            }
        }
    };
}

mod wit_0_2 {
    use super::*;
    use v0_2::verifier::credhost::plugin::ssh::{Host, LoginResult as Wit, Outcome as O};
    use v0_2::verifier::credhost::plugin::types::Target;

    typed_outcome!(O);

    fn answer(target: Target, r: LoginResult) -> Wit {
        Wit {
            target,
            outcome: outcome(r.outcome),
            message: r.message,
        }
    }

    impl Host for CallState {
        async fn password_login(
            &mut self,
            target: Target,
            username: String,
            password: String,
        ) -> Wit {
            let r = Lent::of(self)
                .login(
                    &target.ip,
                    target.port,
                    &username,
                    Proof::Password(&password),
                )
                .await;
            answer(target, r)
        }

        async fn key_login(
            &mut self,
            target: Target,
            username: String,
            private_key: String,
            passphrase: Option<String>,
        ) -> Wit {
            let key = AskedKey::of(private_key, passphrase);
            let r = Lent::of(self)
                .key_login(&target.ip, target.port, &username, key)
                .await;
            answer(target, r)
        }

        async fn key_fingerprint(
            &mut self,
            private_key: String,
            passphrase: Option<String>,
        ) -> Result<(String, String), String> {
            let key = AskedKey::of(private_key, passphrase);
            Lent::of(self)
                .read(key)
                .await
                .map(|key| private_key::fingerprint(&key))
        }
    }
}

impl AskedKey {
    fn of(text: String, passphrase: Option<String>) -> Self {
        Self {
            text: Zeroizing::new(text),
            passphrase: passphrase.map(Zeroizing::new),
        }
    }
}

/// The asks and answers of 0.3, between the generated types and the host's.
pub mod wit_0_3 {
    use super::*;
    use v0_3::verifier::credhost::plugin::ssh::{
        KeyFacts, LoginResult as Wit, Outcome as O, PrivateKey as WitKey, Proof as WitProof,
    };
    use v0_3::verifier::credhost::plugin::types::Target;
    use v0_3::verifier::exports::credhost::plugin::verification::{
        Answer as WitAnswer, Ask as WitAsk,
    };

    impl v0_3::verifier::credhost::plugin::ssh::Host for CallState {}

    typed_outcome!(O);

    fn key(k: WitKey) -> AskedKey {
        AskedKey::of(k.text, k.passphrase)
    }

    /// What the plugin asked, and the target its answer names.
    pub fn ask(ask: WitAsk) -> (Ask, Option<Target>) {
        match ask {
            WitAsk::Login(login) => {
                let proof = match login.proof {
                    WitProof::Password(p) => AskedProof::Password(Zeroizing::new(p)),
                    WitProof::Key(k) => AskedProof::Key(key(k)),
                };
                let ask = Ask::Login {
                    ip: login.target.ip.clone(),
                    port: login.target.port,
                    username: login.username,
                    proof,
                };
                (ask, Some(login.target))
            }
            WitAsk::KeyFacts(k) => (Ask::KeyFacts(key(k)), None),
        }
    }

    pub fn answer(answer: Answer, target: Option<Target>) -> WitAnswer {
        match answer {
            Answer::Login(r) => WitAnswer::Login(Wit {
                target: target.unwrap_or(Target {
                    ip: r.target.ip().to_string(),
                    port: r.target.port(),
                }),
                outcome: outcome(r.outcome),
                message: r.message,
            }),
            Answer::KeyFacts(facts) => {
                WitAnswer::KeyFacts(facts.map(|(key_type, fingerprint)| KeyFacts {
                    key_type,
                    fingerprint,
                }))
            }
        }
    }
}
