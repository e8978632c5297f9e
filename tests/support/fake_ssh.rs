//! In-process SSH servers (russh) on loopback addresses, for scale: hundreds
//! of targets, each on its own 127.x.y.z address.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use russh::Channel;
use russh::server::{Auth, ChannelOpenHandle, Config, Handler, Msg, Session};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub const USER: &str = "fake";
pub const PASSWORD: &str = "fake-pw-Qx7mZ2vL";

/// The longest passphrase a credential may hold (4 KiB), also accepted.
pub fn long_password() -> String {
    "fake-long-pw-".chars().cycle().take(4096).collect()
}

pub struct FakeSsh {
    pub addrs: Vec<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

/// `count` loopback addresses starting at 127.1.0.1 (the /8 is all local).
pub fn loopback_ips(first: u32, count: u32) -> Vec<Ipv4Addr> {
    let base = u32::from(Ipv4Addr::new(127, 1, 0, 0)) + first;
    (0..count).map(|i| Ipv4Addr::from(base + i)).collect()
}

impl FakeSsh {
    pub async fn start(ips: &[Ipv4Addr]) -> Self {
        Self::start_with_latency(ips, Duration::ZERO).await
    }

    /// Servers that wait `latency` before speaking, as a remote host's
    /// network and sshd would: their work then happens off this machine's
    /// CPUs, as it does in a real fleet.
    pub async fn start_with_latency(ips: &[Ipv4Addr], latency: Duration) -> Self {
        let seed = [7u8; 32];
        let key = russh::keys::PrivateKey::from(
            russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&seed),
        );
        let config = Arc::new(Config {
            keys: vec![key],
            auth_rejection_time: Duration::ZERO,
            auth_rejection_time_initial: Some(Duration::ZERO),
            inactivity_timeout: Some(Duration::from_secs(30)),
            ..Default::default()
        });
        let mut addrs = Vec::new();
        let mut tasks = Vec::new();
        for ip in ips {
            let listener = TcpListener::bind((*ip, 0)).await.unwrap();
            addrs.push(listener.local_addr().unwrap());
            let config = config.clone();
            tasks.push(tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let _ = stream.set_nodelay(true);
                    let config = config.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(latency).await;
                        if let Ok(session) = russh::server::run_stream(config, stream, Fake).await {
                            let _ = session.await;
                        }
                    });
                }
            }));
        }
        Self { addrs, tasks }
    }
}

impl Drop for FakeSsh {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

struct Fake;

impl Handler for Fake {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        if user == USER && (password == PASSWORD || password == long_password()) {
            Ok(Auth::Accept)
        } else {
            Ok(Auth::reject())
        }
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        Ok(())
    }
}
