//! Host-driven fan-out: an OB credential of 50 targets against one of 1,
//! the OB verifier (a 0.2 plugin that speaks MySQL itself over WASI
//! sockets) against loopback listeners that answer the handshake after
//! 50 ms, as a server across a network does.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use credhost::budget::Client;
use credhost::capabilities::HostKeys;
use credhost::plugins::{Purpose, Registry, Target};
use credhost::secret::Secret;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::row;

const LATENCY: Duration = Duration::from_millis(50);

/// A MySQL server as far as the handshake goes: a protocol-10 greeting
/// after `LATENCY`, then OK to whatever answer comes.
async fn fake_mysql() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                tokio::time::sleep(LATENCY).await;
                let mut greeting = vec![10u8];
                greeting.extend_from_slice(b"5.7.25-fake\0");
                greeting.extend_from_slice(&1u32.to_le_bytes());
                greeting.extend_from_slice(b"abcdefgh\0");
                let caps: u32 = (1 << 9) | (1 << 15) | (1 << 19);
                greeting.extend_from_slice(&(caps as u16).to_le_bytes());
                greeting.push(45);
                greeting.extend_from_slice(&2u16.to_le_bytes());
                greeting.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
                greeting.push(21);
                greeting.extend_from_slice(&[0u8; 10]);
                greeting.extend_from_slice(b"ijklmnopqrst\0");
                greeting.extend_from_slice(b"mysql_native_password\0");
                let mut packet = (greeting.len() as u32).to_le_bytes().to_vec();
                packet[3] = 0;
                packet.extend_from_slice(&greeting);
                if stream.write_all(&packet).await.is_err() {
                    return;
                }
                let mut header = [0u8; 4];
                if stream.read_exact(&mut header).await.is_err() {
                    return;
                }
                let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
                let mut body = vec![0u8; len];
                if stream.read_exact(&mut body).await.is_err() {
                    return;
                }
                let ok = [7u8, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0];
                let _ = stream.write_all(&ok).await;
            });
        }
    });
    addr
}

async fn verify_time(registry: &Registry, targets: &[SocketAddr]) -> Duration {
    let ob = registry.verifier("OB").expect("the OB verifier is loaded");
    let property = json!({
        "targets": targets.iter().map(|t| json!({ "ip": t.ip().to_string(), "port": t.port() })).collect::<Vec<_>>(),
        "username": "root", "passphrase": "p",
    })
    .to_string();
    let normalized = ob
        .normalize(&property, Purpose::Validate, None)
        .await
        .unwrap()
        .unwrap();
    let targets: Vec<Target> = normalized.targets.clone();
    let secret = Secret::new(b"p".to_vec());
    let mut best = Duration::MAX;
    for _ in 0..7 {
        let started = Instant::now();
        let details = ob
            .verify(
                &normalized.public,
                &secret,
                &targets,
                &HostKeys::learn(Vec::new()),
                &Client::default(),
            )
            .await
            .unwrap();
        let took = started.elapsed();
        assert!(details.iter().all(|d| d.succeeded()), "{details:?}");
        best = best.min(took);
    }
    best
}

pub async fn fanout() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        credhost::plugins::embedded::build_dir().join("ob_verifier.wasm"),
        dir.path().join("ob_verifier.wasm"),
    )
    .unwrap();
    let runtime = super::runtime(credhost::capabilities::SshSettings::default());
    let registry = Registry::load(&runtime, Some(dir.path()), &Default::default())
        .await
        .unwrap();
    let mut servers = Vec::new();
    for _ in 0..50 {
        servers.push(fake_mysql().await);
    }
    let one = verify_time(&registry, &servers[..1]).await;
    let fifty = verify_time(&registry, &servers).await;
    row(
        "OB validate, 50 targets / 1 (host fan-out, 50 ms servers)",
        format!(
            "{:.2}× ({:.1} / {:.1} ms)",
            fifty.as_secs_f64() / one.as_secs_f64(),
            fifty.as_secs_f64() * 1e3,
            one.as_secs_f64() * 1e3
        ),
        "≤ 2×",
    );
}
