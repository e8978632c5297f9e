//! Shared by the end-to-end tests: a real OpenSSH `sshd` on loopback, loopback
//! ports that refuse or never answer, and the plugin runtime as the server
//! builds it.
#![allow(dead_code)]

pub mod fake_ssh;
pub mod mariadb;
pub mod netns;
pub mod server;
pub mod sshd;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use credhost::capabilities::SshSettings;
use credhost::plugins::{EngineSettings, LimitsOverride, PrecompileCache, Registry, Runtime};

/// A loopback port that nothing listens on, for the rest of the test
/// process: connecting is refused. A socket stays bound to it without
/// listening, so no listener started later (a `SilentListener`, a server)
/// can be given the same port and answer.
pub fn closed_port() -> u16 {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    std::mem::forget(socket);
    port
}

/// A loopback port free now, for a server the test starts on it.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A loopback listener that accepts connections and never says a word.
pub struct SilentListener {
    pub addr: SocketAddr,
    _held: std::thread::JoinHandle<()>,
}

impl SilentListener {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let held = std::thread::spawn(move || {
            let mut open: Vec<TcpStream> = Vec::new();
            for stream in listener.incoming().flatten() {
                open.push(stream);
            }
        });
        Self { addr, _held: held }
    }
}

/// SSH settings short enough for tests that wait on a timeout.
pub fn quick_ssh() -> SshSettings {
    SshSettings {
        connect_timeout_ms: 2_000,
        handshake_timeout_ms: 1_500,
        auth_timeout_ms: 5_000,
        max_concurrent: 64,
        ..SshSettings::default()
    }
}

pub async fn runtime(ssh: SshSettings) -> Arc<Runtime> {
    runtime_with(EngineSettings::default(), ssh).await
}

pub async fn runtime_with(settings: EngineSettings, ssh: SshSettings) -> Arc<Runtime> {
    // Shared by every test run, so each component compiles once.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache");
    std::fs::create_dir_all(&dir).unwrap();
    let key = credhost::data_dir::secret_file(&dir.join("cache.key")).unwrap();
    let cache = PrecompileCache::new(dir, key);
    Runtime::new(settings, cache, ssh).unwrap()
}

pub async fn registry(
    runtime: &Arc<Runtime>,
    dir: Option<&Path>,
    overrides: &[(&str, LimitsOverride)],
) -> Registry {
    let overrides: HashMap<String, LimitsOverride> =
        overrides.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    Registry::load(runtime, dir, &overrides).await.unwrap()
}

/// A plugin directory holding copies of the named fixture components.
pub fn plugin_dir(fixtures: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in fixtures {
        let file = format!("{name}.wasm");
        std::fs::copy(
            credhost::plugins::embedded::build_dir().join(&file),
            dir.path().join(&file),
        )
        .unwrap();
    }
    dir
}

pub fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}
