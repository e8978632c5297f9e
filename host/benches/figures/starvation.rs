//! Verification must not starve the rest: one client (from 127.0.0.2)
//! keeps 256 validates in flight, each aimed at a loopback listener that
//! accepts and never speaks, while another measures `GET /credential/{id}`
//! and creates against a live OpenSSH sshd (the one `tests/run` sets up).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::json;
use tokio::net::{TcpListener, TcpSocket};

use super::sshd::{self, Sshd};
use super::{get_latencies, open_router, percentile, record, row, serve, service_with};

const FLOOD: usize = 256;

/// Accepts connections and holds them open without a word.
async fn silent_listener() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

/// One request on a connection of its own from `from`; None if the
/// connection failed (as it does when the section ends under the flood).
async fn post(addr: SocketAddr, from: [u8; 4], path: &str, body: String) -> Option<(u16, Bytes)> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::from((from, 0))).ok()?;
    let stream = socket.connect(addr).await.ok()?;
    stream.set_nodelay(true).ok()?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(conn);
    let request = hyper::Request::post(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .ok()?;
    let response = sender.send_request(request).await.ok()?;
    let status = response.status().as_u16();
    Some((
        status,
        response.into_body().collect().await.ok()?.to_bytes(),
    ))
}

fn property(addr: SocketAddr, passphrase: &str) -> serde_json::Value {
    json!({ "targets": [{ "ip": addr.ip().to_string(), "port": addr.port() }],
            "username": sshd::USER, "type": "PASSWORD", "passphrase": passphrase })
}

/// Create then delete a credential on the sshd; the create's time.
async fn create_once(server: SocketAddr, sshd: SocketAddr, n: usize) -> Duration {
    let body = json!({ "target_type": "HOST", "name": format!("c{n}"),
                       "ssh_credential_property": property(sshd, sshd::PASSWORD) });
    let started = Instant::now();
    let (status, answer) = post(
        server,
        [127, 0, 0, 1],
        "/api/v1/security/credential",
        body.to_string(),
    )
    .await
    .expect("the create's connection failed");
    let took = started.elapsed();
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(status, 200, "create against the sshd failed: {answer}");
    let id = answer["data"]["credential_id"].as_u64().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    let stream = socket.connect(server).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let request = hyper::Request::delete(format!("/api/v1/security/credential/{id}"))
        .header("host", "127.0.0.1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200, "delete of {id}");
    took
}

fn median(samples: &mut [Duration]) -> Duration {
    percentile(samples, 0.5)
}

pub async fn starvation() {
    if !std::path::Path::new("/usr/sbin/sshd").exists() {
        panic!("starvation needs OpenSSH's sshd: run tests/run once to install it");
    }
    let sshd = Sshd::start();
    let (service, dir) =
        service_with(vec![record(1, "web".into(), "192.0.2.1".parse().unwrap())]).await;
    let server = serve(open_router(service, &dir)).await;
    let mut n = 0;
    let mut idle = Vec::new();
    for _ in 0..10 {
        idle.push(create_once(server, sshd.addr, n).await);
        n += 1;
    }
    let mut get_idle = get_latencies(server, 1, Duration::from_secs(2), || true).await;

    let silent = silent_listener().await;
    let stop = Arc::new(AtomicBool::new(false));
    let (answered, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let body = json!({ "target_type": "HOST",
                       "ssh_credential_property": property(silent, "guess") })
    .to_string();
    let mut flood = Vec::new();
    for _ in 0..FLOOD {
        let (stop, answered, refused, body) = (
            stop.clone(),
            answered.clone(),
            refused.clone(),
            body.clone(),
        );
        flood.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let path = "/api/v1/security/credential/validate";
                match post(server, [127, 0, 0, 2], path, body.clone()).await {
                    Some((503, _)) => refused.fetch_add(1, Ordering::Relaxed),
                    Some(_) => answered.fetch_add(1, Ordering::Relaxed),
                    None => break,
                };
            }
        }));
    }
    // Let the flood fill its share and queue the rest.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut busy = Vec::new();
    for _ in 0..10 {
        busy.push(create_once(server, sshd.addr, n).await);
        n += 1;
    }
    let mut get_busy = get_latencies(server, 1, Duration::from_secs(3), || true).await;
    stop.store(true, Ordering::Relaxed);
    for task in flood {
        task.abort();
    }

    let (idle, busy) = (median(&mut idle), median(&mut busy));
    row(
        "GET /credential/{id} p99, idle",
        format!(
            "{:.2} ms",
            percentile(&mut get_idle, 0.99).as_secs_f64() * 1e3
        ),
        "",
    );
    row(
        "GET /credential/{id} p99, 256 validates hanging",
        format!(
            "{:.2} ms",
            percentile(&mut get_busy, 0.99).as_secs_f64() * 1e3
        ),
        "≤ 10 ms",
    );
    row(
        "create against sshd, idle (median)",
        format!("{:.1} ms", idle.as_secs_f64() * 1e3),
        "",
    );
    row(
        "create against sshd, 256 validates hanging / idle",
        format!("{:.2}×", busy.as_secs_f64() / idle.as_secs_f64()),
        "≤ 2×",
    );
    row(
        "  the flood meanwhile: answered / refused 503",
        format!(
            "{} / {}",
            answered.load(Ordering::Relaxed),
            refused.load(Ordering::Relaxed)
        ),
        "",
    );
}
