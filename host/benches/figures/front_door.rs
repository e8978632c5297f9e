//! The front door under attack: four clients, each from an address of its
//! own on loopback, send headers of the largest size accepted, made of
//! random blocks, as fast as they can, while one client measures the
//! public `GET /api/v1/info` and authenticated SDK-style requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use credhost::api::auth::{Authenticator, MAX_BLOCKS};
use credhost::keys::TransportKey;
use credhost::secret::Secret;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use tokio::net::TcpSocket;

use super::{percentile, row, serve, service_with};

const PASSWORD: &str = "bench-password";
const TARGET: &str = "/api/v1/security/credential/1";

use super::Sender;

async fn connect(addr: SocketAddr, from: [u8; 4]) -> Sender {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((from, 0)))
        .expect("a loopback source address");
    super::handshake(socket.connect(addr).await.unwrap()).await
}

async fn send(sender: &mut Sender, path: &str, header: Option<&str>) -> u16 {
    let mut request = hyper::Request::get(path).header("host", "127.0.0.1");
    if let Some(header) = header {
        request = request.header("X-OCS-Header", header);
    }
    sender.ready().await.unwrap();
    let response = sender
        .send_request(request.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    response.into_body().collect().await.unwrap();
    status
}

/// p99 of `/api/v1/info` and of authenticated GETs (SDK chunking, one
/// request at a time) over `window`.
async fn measure(
    addr: SocketAddr,
    client: &credhost::client::Client,
    window: Duration,
) -> (Duration, Duration, usize) {
    let mut sender = connect(addr, [127, 0, 0, 1]).await;
    let mut info = Vec::new();
    let mut authed = Vec::new();
    let deadline = Instant::now() + window;
    while Instant::now() < deadline {
        let started = Instant::now();
        assert_eq!(send(&mut sender, "/api/v1/info", None).await, 200);
        info.push(started.elapsed());
        // Sealing is the client's work, not the server's: before the clock.
        let header = client.seal(&client.claims(TARGET), None).header;
        let started = Instant::now();
        assert_eq!(send(&mut sender, TARGET, Some(&header)).await, 200);
        authed.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let n = authed.len();
    (
        percentile(&mut info, 0.99),
        percentile(&mut authed, 0.99),
        n,
    )
}

pub async fn front_door() {
    let (service, dir) = service_with(vec![super::record(
        1,
        "web".into(),
        "192.0.2.1".parse().unwrap(),
    )])
    .await;
    let key = TransportKey::open_or_create(&dir.path().join("rsa.der"), 2048).unwrap();
    let block_len = key.block_len();
    let auth = Arc::new(Authenticator::new(
        key,
        Some(Secret::new(PASSWORD.as_bytes().to_vec())),
        Duration::from_secs(3600),
        Default::default(),
    ));
    let addr = serve(credhost::api::router(
        service,
        auth,
        super::front_door(),
        "127.0.0.1:0".parse().unwrap(),
    ))
    .await;
    let client = credhost::client::Client::connect(&format!("http://{addr}"), PASSWORD)
        .await
        .unwrap()
        .with_chunk(53);
    let window = Duration::from_secs(5);
    let (info_idle, authed_idle, _) = measure(addr, &client, window).await;

    // Random blocks below the modulus: each costs a private-key operation
    // until the address is slowed down.
    let junk: Vec<String> = (0..64)
        .map(|_| {
            let mut blocks = Vec::with_capacity(MAX_BLOCKS * block_len);
            for _ in 0..MAX_BLOCKS {
                let mut block: Vec<u8> = (0..block_len).map(|_| rand::random::<u8>()).collect();
                block[0] = 0;
                blocks.extend(block);
            }
            base64::engine::general_purpose::STANDARD.encode(blocks)
        })
        .collect();
    let junk = Arc::new(junk);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut attackers = Vec::new();
    for n in 0..4u8 {
        let (junk, stop, sent) = (junk.clone(), stop.clone(), sent.clone());
        attackers.push(tokio::spawn(async move {
            let mut sender = connect(addr, [127, 0, 0, 2 + n]).await;
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                send(&mut sender, TARGET, Some(&junk[i % junk.len()])).await;
                sent.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    let (info_busy, authed_busy, samples) = measure(addr, &client, window).await;
    stop.store(true, Ordering::Relaxed);
    for attacker in attackers {
        attacker.await.unwrap();
    }
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
    row(
        &format!("junk headers sent by 4 clients ({MAX_BLOCKS} blocks each), per second",),
        format!(
            "{:.0}",
            sent.load(Ordering::Relaxed) as f64 / window.as_secs_f64()
        ),
        "",
    );
    row("GET /api/v1/info p99, idle", ms(info_idle), "");
    row("GET /api/v1/info p99, under junk", ms(info_busy), "≤ 20 ms");
    row(
        "authenticated GET (SDK chunks) p99, idle",
        ms(authed_idle),
        "",
    );
    row(
        &format!("authenticated GET p99, under junk ({samples} samples)"),
        ms(authed_busy),
        "",
    );
    row(
        "authenticated p99 under junk / idle",
        format!(
            "{:.2}×",
            authed_busy.as_secs_f64() / authed_idle.as_secs_f64()
        ),
        "≤ 3×",
    );
}
