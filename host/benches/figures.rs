//! The figures quoted in the README, printed as a table: `just bench`
//! (or `cargo bench -p credhost -- NAME` for one section).
//!
//! Everything talks to loopback only: in-process SSH servers on 127.1.x.y,
//! servers on 127.0.0.1.

#[path = "../../tests/support/fake_ssh.rs"]
mod fake_ssh;
#[path = "figures/fanout.rs"]
mod fanout;
#[path = "figures/front_door.rs"]
mod front_door;
#[path = "figures/key_signature.rs"]
mod key_signature;
// Shared with the tests, which use more of it.
#[allow(dead_code)]
#[path = "../../tests/support/mariadb.rs"]
mod mariadb;
#[path = "figures/shared_store.rs"]
mod shared_store;
#[allow(dead_code)]
#[path = "../../tests/support/sshd.rs"]
mod sshd;
#[path = "figures/starvation.rs"]
mod starvation;

use credhost::budget::Client;
use credhost::capabilities::HostKeys;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use credhost::capabilities::SshSettings;
use credhost::plugins::{EngineSettings, PrecompileCache, Purpose, Registry, Runtime, Target};
use credhost::secret::Secret;
use credhost::service::{ListRequest, Service, ServiceSettings, TargetPolicy};
use credhost::store::{Record, RedbStore, SealedSecret, Store};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

fn main() {
    credhost::clock::init_local_offset();
    // Metrics are recorded as in the server.
    credhost::metrics::install();
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    // A runtime per section, so nothing one leaves behind (idle SSH
    // sessions, servers) runs during the next.
    let run = |section: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(section)
    };
    println!("{:<58} {:>14} {:>14}", "figure", "value", "goal");
    if wanted("plugin_call") {
        run(Box::pin(plugin_call()));
    }
    if wanted("key_signature") {
        key_signature::key_signature();
    }
    if wanted("ssh_fanout") {
        run(Box::pin(ssh_fanout()));
    }
    if wanted("fanout") {
        run(Box::pin(fanout::fanout()));
    }
    if wanted("startup") {
        startup();
    }
    if wanted("get_throughput") {
        run(Box::pin(get_throughput()));
    }
    if wanted("list") {
        run(Box::pin(list()));
    }
    if wanted("auth") {
        run(Box::pin(auth()));
    }
    if wanted("tokens") {
        run(Box::pin(tokens()));
    }
    if wanted("front_door") {
        run(Box::pin(front_door::front_door()));
    }
    if wanted("starvation") {
        run(Box::pin(starvation::starvation()));
    }
    if wanted("rewrap") {
        run(Box::pin(rewrap()));
    }
    if wanted("mysql") {
        run(Box::pin(shared_store::shared_store()));
    }
}

fn row(figure: &str, value: String, goal: &str) {
    println!("{figure:<58} {value:>14} {goal:>14}");
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

fn cache_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-plugin-cache")
}

fn runtime(ssh: SshSettings) -> Arc<Runtime> {
    Runtime::new(
        EngineSettings::default(),
        PrecompileCache::new(
            cache_dir(),
            credhost::data_dir::secret_file(&cache_dir().with_extension("key")).unwrap(),
        ),
        ssh,
    )
    .unwrap()
}

/// The embedded plugins and the benchmarks' verifier that accepts every
/// target at once (target type INSTANT).
async fn registry(ssh: SshSettings) -> Registry {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-plugins");
    std::fs::create_dir_all(&dir).unwrap();
    for fixture in ["instant_verifier.wasm", "idle_verifier.wasm"] {
        std::fs::copy(
            credhost::plugins::embedded::build_dir().join(fixture),
            dir.join(fixture),
        )
        .unwrap();
    }
    Registry::load(&runtime(ssh), Some(&dir), &Default::default())
        .await
        .unwrap()
}

/// A fresh Store from the InstancePre plus `normalize` of a typical property,
/// beside the same for components that do less, all sampled together.
async fn plugin_call() {
    let registry = registry(SshSettings::default()).await;
    let property = json!({
        "targets": [{ "ip": "127.0.0.1", "port": 22 }, { "ip": "127.0.0.2" }],
        "username": "root", "type": "PASSWORD", "passphrase": "P@ssw0rd",
    })
    .to_string();
    let normalize =
        |target_type| Call::Normalize(registry.verifier(target_type).unwrap(), &property);
    let empty = bare_component("empty_component.wasm");
    let ssh = bare_component("ssh_verifier.wasm");
    let instant = bare_component("instant_verifier.wasm");
    let mut samples = sampled_together([
        normalize("HOST"),
        // Two verifiers built like HOST (the SDK, the same memory layout)
        // that import nothing, so their modules need no shim for a
        // capability: INSTANT reads the same property the same way; IDLE
        // returns HOST's answer without reading it.
        normalize("INSTANT"),
        normalize("IDLE"),
        // A component that does nothing: the floor of any call.
        Call::Run(&empty),
        // Components instantiated (and their stores dropped) without a
        // call: what each costs for its shape alone, so the rest of a call
        // is its own work (the guest, the marshalling, the pages it
        // touched), and SSH's against INSTANT's is the price of the shim
        // through which a module calls imports that pass strings.
        Call::Instantiate(&empty),
        Call::Instantiate(&ssh),
        Call::Instantiate(&instant),
    ])
    .await;
    let p99 = percentile(&mut samples[0], 0.99);
    let [p50, instant, idle, floor, empty_alone, alone, instant_alone] =
        samples.map(|mut samples| percentile(&mut samples, 0.5));
    let micros = |d: Duration| format!("{:.1} µs", d.as_secs_f64() * 1e6);
    let ratio = |d: Duration| d.as_secs_f64() / floor.as_secs_f64();
    row(
        "plugin call: instantiate + normalize, p50",
        micros(p50),
        "≤ 10 µs",
    );
    row(
        "plugin call: instantiate + an empty export, p50",
        micros(floor),
        "",
    );
    row(
        "plugin call: instantiate the SSH verifier alone, p50",
        micros(alone),
        "",
    );
    row(
        "plugin call: instantiate the empty component alone, p50",
        micros(empty_alone),
        "",
    );
    row(
        "plugin call: instantiate INSTANT (no imports) alone, p50",
        micros(instant_alone),
        "",
    );
    row(
        "plugin call: normalize / empty",
        format!("{:.2}×", ratio(p50)),
        "≤ 1.5×",
    );
    for (figure, time) in [
        ("no imports, same reading (INSTANT)", instant),
        ("no imports, fixed answer (IDLE)", idle),
    ] {
        row(
            &format!("plugin call: normalize, {figure}"),
            format!("{} {:.2}×", micros(time), ratio(time)),
            "",
        );
    }
    row("plugin call: instantiate + normalize, p99", micros(p99), "");
}

/// One kind of timed plugin call.
enum Call<'a> {
    /// `normalize` of a property the verifier accepts.
    Normalize(&'a credhost::plugins::VerifierPlugin, &'a str),
    /// A component's `run`.
    Run(&'a credhost::plugins::EmptyCall),
    /// A component instantiated, its store dropped.
    Instantiate(&'a credhost::plugins::EmptyCall),
}

impl Call<'_> {
    async fn once(&self) {
        match self {
            Call::Normalize(verifier, property) => {
                verifier
                    .normalize(property, Purpose::Create, None)
                    .await
                    .unwrap()
                    .unwrap();
            }
            Call::Run(component) => component.call().await.unwrap(),
            Call::Instantiate(component) => component.instantiate().await.unwrap(),
        }
    }
}

/// 20,000 timings of each call, taken in blocks of 1,000 that take turns,
/// each block after 100 untimed calls to warm up. A virtual machine's speed
/// drifts by a third within minutes here, so calls timed one kind after
/// another would compare different machines; taking turns spreads the drift
/// over all of them, and the ratios compare like with like.
async fn sampled_together<const N: usize>(calls: [Call<'_>; N]) -> [Vec<Duration>; N] {
    const BLOCKS: usize = 20;
    const BLOCK: usize = 1_000;
    let mut samples = std::array::from_fn(|_| Vec::with_capacity(BLOCKS * BLOCK));
    for _ in 0..BLOCKS {
        for (call, samples) in calls.iter().zip(samples.iter_mut()) {
            for _ in 0..100 {
                call.once().await;
            }
            for _ in 0..BLOCK {
                let started = Instant::now();
                call.once().await;
                samples.push(started.elapsed());
            }
        }
    }
    samples
}

/// One of the embedded build's components, loaded to be instantiated (and
/// its `run` called, if it has one) the way plugins are.
fn bare_component(file: &str) -> credhost::plugins::EmptyCall {
    let bytes = std::fs::read(credhost::plugins::embedded::build_dir().join(file)).unwrap();
    credhost::plugins::EmptyCall::load(runtime(SshSettings::default()), &bytes).unwrap()
}

/// Verify of one credential with n targets, best of several runs.
async fn verify_time(registry: &Registry, fake: &fake_ssh::FakeSsh, n: usize) -> Duration {
    let host = registry.verifier("HOST").unwrap();
    let targets: Vec<Target> = fake.addrs[..n]
        .iter()
        .map(|a| Target {
            ip: a.ip(),
            port: a.port(),
        })
        .collect();
    let public = json!({
        "targets": targets.iter().map(|t| json!({ "ip": t.ip.to_string(), "port": t.port })).collect::<Vec<_>>(),
        "username": fake_ssh::USER, "type": "PASSWORD",
    });
    let secret = Secret::new(fake_ssh::PASSWORD.as_bytes().to_vec());
    let mut best = Duration::MAX;
    for _ in 0..7 {
        let started = Instant::now();
        let keys = HostKeys::learn(Vec::new());
        let details = host
            .verify(
                &public.to_string(),
                &secret,
                &targets,
                &keys,
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

/// How long the fake servers wait before speaking: well under the ~85 ms one
/// password login to Debian's OpenSSH sshd takes on loopback here.
const TARGET_LATENCY: Duration = Duration::from_millis(50);

async fn ssh_fanout() {
    let registry = registry(SshSettings::default()).await;
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    let ratio = |a: Duration, b: Duration| format!("{:.2}×", a.as_secs_f64() / b.as_secs_f64());

    // Servers that answer at once: every handshake's crypto, client and
    // server side, runs on this machine's two cores. The CPU floor.
    let instant = fake_ssh::FakeSsh::start(&fake_ssh::loopback_ips(5000, 100)).await;
    let one = verify_time(&registry, &instant, 1).await;
    let fifty = verify_time(&registry, &instant, 50).await;
    let hundred = verify_time(&registry, &instant, 100).await;
    row(
        "ssh verify, instant servers: 1 / 50 / 100 targets",
        format!("{} / {} / {}", ms(one), ms(fifty), ms(hundred)),
        "",
    );

    let remote =
        fake_ssh::FakeSsh::start_with_latency(&fake_ssh::loopback_ips(6000, 100), TARGET_LATENCY)
            .await;
    let one = verify_time(&registry, &remote, 1).await;
    let fifty = verify_time(&registry, &remote, 50).await;
    let hundred = verify_time(&registry, &remote, 100).await;
    row("ssh verify, 50 ms servers: 1 target", ms(one), "");
    row("ssh verify, 50 ms servers: 50 targets", ms(fifty), "");
    row("ssh verify, 50 ms servers: 100 targets", ms(hundred), "");
    row(
        "ssh fan-out: 50 targets / 1 target",
        ratio(fifty, one),
        "≤ 2×",
    );
    row(
        "validate: 100 targets / 1 target",
        ratio(hundred, one),
        "≤ 2×",
    );
}

/// Spawn to first answered request, with the precompile cache warm.
fn startup() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        let started = Instant::now();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_credhost"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env("CREDHOST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("credhost listening on http://")
            .unwrap()
            .to_string();
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        use std::io::{Read, Write};
        write!(
            stream,
            "GET /api/v1/security/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let took = started.elapsed();
        child.kill().unwrap();
        child.wait().unwrap();
        took
    };
    let cold = start();
    let mut warm: Vec<Duration> = (0..5).map(|_| start()).collect();
    let median = percentile(&mut warm, 0.5);
    row(
        "start-up to first answer, cold cache",
        format!("{:.0} ms", cold.as_secs_f64() * 1e3),
        "",
    );
    row(
        "start-up to first answer, warm cache (median of 5)",
        format!("{:.0} ms", median.as_secs_f64() * 1e3),
        "≤ 200 ms",
    );
}

fn record(id: u64, name: String, ip: std::net::IpAddr) -> Record {
    let now = credhost::clock::now_us();
    Record {
        id,
        name,
        description: String::new(),
        target_type: "HOST".into(),
        public_field: "ssh_secret".into(),
        public: json!({ "targets": [{ "ip": ip.to_string(), "port": 22 }], "username": format!("user{}", id % 97), "type": "PASSWORD" }).to_string(),
        targets: vec![Target { ip, port: 22 }],
        search_terms: vec![format!("user{}", id % 97)],
        secret: SealedSecret { policy: "aes-256-gcm".into(), policy_version: "0.1.0".into(), key_id: 1, ciphertext: vec![0; 40] },
        created_us: now + id as i64,
        updated_us: now + id as i64,
        host_keys: Vec::new(),
        version: 1,
    }
}

async fn service_with(records: Vec<Record>) -> (Arc<Service>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("bench.redb")).unwrap();
    for chunk in records.chunks(10_000) {
        store.import(chunk).unwrap();
    }
    let keys = credhost::keys::Keyring::open(&dir.path().join("keys.json")).unwrap();
    let service = Service::new(
        registry(SshSettings::default()).await,
        Arc::new(store) as Arc<dyn Store>,
        Arc::new(keys),
        settings(),
    )
    .unwrap()
    // Every request is audited, as the server does by default.
    .with_audit(Arc::new(
        credhost::audit::Audit::open(
            &Default::default(),
            dir.path().join("audit.log"),
            &Secret::new(vec![1; 32]),
        )
        .unwrap(),
    ));
    (Arc::new(service), dir)
}

/// A service's settings as the server's defaults make them.
fn settings() -> ServiceSettings {
    ServiceSettings {
        targets: TargetPolicy::default(),
        verify_concurrency: 64,
        policy: "aes-256-gcm".into(),
        guesses: Default::default(),
    }
}

/// The API without a password (plain requests accepted), as `serve` builds it.
fn open_router(service: Arc<Service>, dir: &tempfile::TempDir) -> axum::Router {
    let key =
        credhost::keys::TransportKey::open_or_create(&dir.path().join("rsa.der"), 2048).unwrap();
    let auth = Arc::new(credhost::api::auth::Authenticator::new(
        key,
        None,
        Duration::from_secs(3600),
        Default::default(),
    ));
    credhost::api::router(service, auth, front_door(), "127.0.0.1:0".parse().unwrap())
}

fn front_door() -> credhost::api::FrontDoor {
    credhost::api::FrontDoor {
        guard: Default::default(),
        request_timeout: Duration::from_secs(300),
        changes: Default::default(),
    }
}

async fn serve(router: axum::Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = credhost::config::HttpConfig::default().connection_limits();
    tokio::spawn(credhost::connections::serve(
        listener,
        router,
        limits,
        credhost::connections::Caps::new(limits.max, limits.per_client),
        std::future::pending(),
    ));
    addr
}

/// A hyper server that answers every request with the same bytes.
async fn serve_minimal(body: Bytes) -> SocketAddr {
    serve_minimal_with(body, None).await
}

/// Blocking work a minimal server does per request before it answers.
type Work = Arc<dyn Fn() + Send + Sync>;

/// The same, running `work` on the blocking pool first when there is one.
async fn serve_minimal_with(body: Bytes, work: Option<Work>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (body, work) = (body.clone(), work.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| {
                    let (body, work) = (body.clone(), work.clone());
                    async move {
                        if let Some(work) = work {
                            tokio::task::spawn_blocking(move || work()).await.unwrap();
                        }
                        Ok::<_, Infallible>(
                            hyper::Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(body))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// One keep-alive HTTP/1 connection, its driver spawned.
async fn connect(addr: SocketAddr) -> Sender {
    handshake(TcpStream::connect(addr).await.unwrap()).await
}

async fn handshake(stream: TcpStream) -> Sender {
    stream.set_nodelay(true).unwrap();
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

/// Requests per second: what the tasks counted, over the time since `started`.
async fn rate(tasks: Vec<tokio::task::JoinHandle<u64>>, started: Instant) -> f64 {
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// How the requests of a load authenticate.
#[derive(Clone)]
enum Credentials {
    None,
    /// Each request carries the next one as `X-OCS-Header` (each is good
    /// once); the run ends early when they run out.
    OcsHeaders(Arc<Vec<String>>),
    Bearer(Arc<str>),
}

/// Requests per second over `connections` keep-alive connections.
async fn load(
    addr: SocketAddr,
    path: &str,
    connections: usize,
    duration: Duration,
    credentials: Credentials,
) -> f64 {
    let started = Instant::now();
    let deadline = started + duration;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (path, credentials, next) = (path.to_string(), credentials.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr).await;
            let mut done = 0u64;
            while Instant::now() < deadline {
                let mut request = hyper::Request::get(&path).header("host", "127.0.0.1");
                match &credentials {
                    Credentials::None => {}
                    Credentials::OcsHeaders(headers) => {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(header) = headers.get(i) else { break };
                        request = request.header("X-OCS-Header", header);
                    }
                    Credentials::Bearer(token) => {
                        request = request.header("authorization", format!("Bearer {token}"));
                    }
                }
                let request = request.body(Full::new(Bytes::new())).unwrap();
                sender.ready().await.unwrap();
                let response = sender.send_request(request).await.unwrap();
                assert_eq!(response.status(), 200);
                response.into_body().collect().await.unwrap();
                done += 1;
            }
            done
        }));
    }
    rate(tasks, started).await
}

async fn get_throughput() {
    let (service, dir) =
        service_with(vec![record(1, "web".into(), "192.0.2.1".parse().unwrap())]).await;
    let credhost = serve(open_router(service, &dir)).await;
    let body = reqwest_body(credhost).await;
    let minimal = serve_minimal(body).await;
    let window = Duration::from_secs(4);
    let path = "/api/v1/security/credential/1";
    let _ = load(
        credhost,
        path,
        32,
        Duration::from_millis(500),
        Credentials::None,
    )
    .await;
    let ours = load(credhost, path, 32, window, Credentials::None).await;
    let bound = load(minimal, path, 32, window, Credentials::None).await;
    row(
        "GET /credential/{id}, credhost",
        format!("{ours:.0} req/s"),
        "",
    );
    row(
        "GET /credential/{id}, minimal hyper, same JSON",
        format!("{bound:.0} req/s"),
        "",
    );
    row(
        "GET throughput ratio credhost / minimal hyper",
        format!("{:.2}", ours / bound),
        "≥ 0.5",
    );
}

/// What credhost answers for credential 1, to serve the same bytes.
async fn reqwest_body(addr: SocketAddr) -> Bytes {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let request = hyper::Request::get("/api/v1/security/credential/1")
        .header("host", "127.0.0.1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    sender
        .send_request(request)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
}

async fn list() {
    const N: u64 = 100_000;
    let records: Vec<Record> = (1..=N)
        .map(|id| {
            let ip = std::net::Ipv4Addr::from(0x7f80_0000 + id as u32);
            record(id, format!("host-{:06}", (id * 7919) % N), ip.into())
        })
        .collect();
    let started = Instant::now();
    let (service, _dir) = service_with(records).await;
    row(
        "list: import 100,000 credentials",
        format!("{:.1} s", started.elapsed().as_secs_f64()),
        "",
    );
    let measure = |request: ListRequest, runs: usize| {
        let service = service.clone();
        async move {
            let mut samples = Vec::with_capacity(runs);
            for _ in 0..runs {
                let started = Instant::now();
                let page = service.list(request.clone()).await.unwrap();
                samples.push(started.elapsed());
                assert!(!page.contents.is_empty());
            }
            percentile(&mut samples, 0.99)
        }
    };
    let by_name = ListRequest {
        sort: "name".into(),
        page: 50,
        page_size: 10,
        ..Default::default()
    };
    let p99 = measure(by_name, 500).await;
    row(
        "list: page of 10 by name, 100k stored, p99",
        format!("{:.2} ms", p99.as_secs_f64() * 1e3),
        "≤ 5 ms",
    );
    let search = ListRequest {
        key_word: "user42".into(),
        page: 1,
        page_size: 10,
        ..Default::default()
    };
    let p99 = measure(search, 100).await;
    row(
        "list: key_word search, 100k stored, p99",
        format!("{:.2} ms", p99.as_secs_f64() * 1e3),
        "≤ 50 ms",
    );
}

/// 100,000 rows sealed for real under key 1, then a rotation: the rewrap
/// rate, and GET latency while it runs against GET latency without it.
async fn rewrap() {
    const N: u64 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(credhost::keys::Keyring::open(&dir.path().join("keys.json")).unwrap());
    let registry = registry(SshSettings::default()).await;
    let policy = registry.policy("aes-256-gcm").unwrap().clone();
    let (key_id, key) = keys.current();
    let store = RedbStore::open(&dir.path().join("bench.redb")).unwrap();
    for start in (1..=N).step_by(10_000) {
        let ids: Vec<u64> = (start..start + 10_000).collect();
        let records = sealed_records(&policy, &key, key_id, &ids, |id| format!("r{id}")).await;
        store.import(&records).unwrap();
    }
    let service = Arc::new(
        Service::new(
            registry,
            Arc::new(store) as Arc<dyn Store>,
            keys,
            settings(),
        )
        .unwrap(),
    );
    let addr = serve(open_router(service.clone(), &dir)).await;

    let _warm = get_latencies(addr, 100_000, Duration::from_secs(1), || true).await;
    let idle = get_latencies(addr, 100_000, Duration::from_secs(3), || true).await;
    let started = Instant::now();
    service.rotate_key().await.unwrap();
    let busy = {
        let service = service.clone();
        get_latencies(addr, 100_000, Duration::from_secs(60), move || {
            service.rewrap_status().state == credhost::service::RewrapState::Running
        })
        .await
    };
    while service.rewrap_status().state == credhost::service::RewrapState::Running {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    let status = service.rewrap_status();
    assert_eq!(status.done, N, "{status:?}");
    row(
        "rewrap: 100,000 rows",
        format!("{:.0} rows/s", N as f64 / took.as_secs_f64()),
        "≥ 50,000 rows/s",
    );
    let (mut idle, mut busy) = (idle, busy);
    let p99_idle = percentile(&mut idle, 0.99);
    let p99_busy = percentile(&mut busy, 0.99);
    let us = |d: Duration| format!("{:.0} µs", d.as_secs_f64() * 1e6);
    row("GET /credential/{id} p99, no rewrap", us(p99_idle), "");
    row(
        &format!(
            "GET /credential/{{id}} p99, during rewrap ({} samples)",
            busy.len()
        ),
        us(p99_busy),
        "",
    );
    row(
        "GET p99 during rewrap / without",
        format!("{:.2}×", p99_busy.as_secs_f64() / p99_idle.as_secs_f64()),
        "≤ 2×",
    );
}

/// Rows `ids`, each with a secret sealed for real by `policy` under `key`,
/// named by `name`, each with a target of its own in 127.128.0.0/9 (parsed,
/// never dialled).
async fn sealed_records(
    policy: &credhost::plugins::PolicyPlugin,
    key: &Secret,
    key_id: u32,
    ids: &[u64],
    name: impl Fn(u64) -> String,
) -> Vec<Record> {
    let items: Vec<(Secret, Vec<u8>)> = ids
        .iter()
        .map(|id| {
            let aad = format!("credhost/credential/{id}/key/{key_id}/policy/aes-256-gcm");
            (Secret::new(b"P@ssw0rd-bench".to_vec()), aad.into_bytes())
        })
        .collect();
    let sealed = policy
        .seal_many(&credhost::budget::Client::server(), key, &items)
        .await
        .unwrap();
    ids.iter()
        .zip(sealed)
        .map(|(id, ciphertext)| {
            let ip = std::net::Ipv4Addr::from(0x7f80_0000 + *id as u32);
            let mut r = record(*id, name(*id), ip.into());
            r.secret = SealedSecret {
                policy: "aes-256-gcm".into(),
                policy_version: policy.meta.version.clone(),
                key_id,
                ciphertext: ciphertext.unwrap(),
            };
            r
        })
        .collect()
}

/// One client, sequential GETs of ids spread over `1..=rows`, for at most
/// `window` and while `go()` holds.
async fn get_latencies(
    addr: SocketAddr,
    rows: u64,
    window: Duration,
    go: impl Fn() -> bool,
) -> Vec<Duration> {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let deadline = Instant::now() + window;
    let mut samples = Vec::new();
    let mut id = 1u64;
    while Instant::now() < deadline && go() {
        let request = hyper::Request::get(format!("/api/v1/security/credential/{id}"))
            .header("host", "127.0.0.1")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let started = Instant::now();
        sender.ready().await.unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        response.into_body().collect().await.unwrap();
        samples.push(started.elapsed());
        id = (id + 7919) % rows + 1;
    }
    samples
}

/// Authenticated `GET /credential/{id}` against unauthenticated, and how
/// close it comes to the bound the RSA private-key operations alone set.
async fn auth() {
    use credhost::api::auth::Authenticator;
    use credhost::keys::TransportKey;
    let (service, dir) =
        service_with(vec![record(1, "web".into(), "192.0.2.1".parse().unwrap())]).await;
    let key_path = dir.path().join("rsa.der");
    let key = TransportKey::open_or_create(&key_path, 2048).unwrap();

    // The bound: one private-key operation per request (one 2048-bit block
    // carries the whole header), on every core.
    let block = credhost::client::encrypt_header(&key.public_key(), &[b'x'; 200], 245);
    use base64::Engine as _;
    let block = base64::engine::general_purpose::STANDARD
        .decode(block)
        .unwrap();
    let runs = 300;
    let started = Instant::now();
    for _ in 0..runs {
        key.decrypt_block(&block);
    }
    let per_op = started.elapsed() / runs;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let bound = cores as f64 / per_op.as_secs_f64();

    let password = "bench-password";
    let open = serve(credhost::api::router(
        service.clone(),
        Arc::new(Authenticator::new(
            TransportKey::open_or_create(&key_path, 2048).unwrap(),
            None,
            Duration::from_secs(3600),
            Default::default(),
        )),
        front_door(),
        "127.0.0.1:0".parse().unwrap(),
    ))
    .await;
    let guarded = serve(credhost::api::router(
        service,
        // As a server with a password keeps them: in a journal too.
        Arc::new(
            Authenticator::new(
                TransportKey::open_or_create(&key_path, 2048).unwrap(),
                Some(Secret::new(password.as_bytes().to_vec())),
                Duration::from_secs(3600),
                Default::default(),
            )
            .with_replay_journal(&dir.path().join("replay.journal"))
            .unwrap(),
        ),
        front_door(),
        "127.0.0.1:0".parse().unwrap(),
    ))
    .await;
    let window = Duration::from_secs(3);
    let plain = load(
        open,
        "/api/v1/security/credential/1",
        16,
        window,
        Credentials::None,
    )
    .await;

    // Headers are sealed before the clock starts (each once: replays are refused).
    let client = credhost::client::Client::connect(&format!("http://{guarded}"), password)
        .await
        .unwrap();
    let target = "/api/v1/security/credential/1";
    let headers: Vec<String> = (0..(bound as usize * 5).max(2000))
        .map(|_| client.seal(&client.claims(target), None).header)
        .collect();
    let authed = load(
        guarded,
        target,
        16,
        window,
        Credentials::OcsHeaders(Arc::new(headers)),
    )
    .await;
    row(
        "GET /credential/{id}, no auth",
        format!("{plain:.0} req/s"),
        "",
    );
    row(
        "GET /credential/{id}, X-OCS-Header (2048-bit RSA)",
        format!("{authed:.0} req/s"),
        "",
    );
    row(
        "RSA-2048 private-key operation",
        format!("{:.0} µs", per_op.as_secs_f64() * 1e6),
        "",
    );
    row(
        &format!("bound set by RSA alone ({cores} cores, 1 op per request)"),
        format!("{bound:.0} req/s"),
        "",
    );
    row(
        "authenticated / RSA bound",
        format!("{:.2}", authed / bound),
        "≥ 0.8",
    );
}

/// Token-authenticated `GET /credential/{id}` against the same without
/// authentication, on one server (audit and metrics on in both).
async fn tokens() {
    use credhost::api::auth::Authenticator;
    use credhost::keys::TransportKey;
    use credhost::service::{NewToken, Principal, Scope};
    let (service, dir) =
        service_with(vec![record(1, "web".into(), "192.0.2.1".parse().unwrap())]).await;
    let issued = service
        .create_token(
            NewToken {
                name: "bench".into(),
                scope: Scope::Read,
                ttl_secs: None,
            },
            &Principal::Local,
        )
        .await
        .unwrap();
    let auth = Authenticator::new(
        TransportKey::open_or_create(&dir.path().join("rsa.der"), 2048).unwrap(),
        None,
        Duration::from_secs(3600),
        Default::default(),
    )
    .with_tokens(service.clone(), false, false);
    let addr = serve(credhost::api::router(
        service,
        Arc::new(auth),
        front_door(),
        "127.0.0.1:0".parse().unwrap(),
    ))
    .await;
    let path = "/api/v1/security/credential/1";
    let window = Duration::from_secs(4);
    let token = Credentials::Bearer(issued.token.into());
    let _ = load(addr, path, 32, Duration::from_millis(500), token.clone()).await;
    let plain = load(addr, path, 32, window, Credentials::None).await;
    let bearer = load(addr, path, 32, window, token).await;
    row(
        "GET /credential/{id}, no auth",
        format!("{plain:.0} req/s"),
        "",
    );
    row(
        "GET /credential/{id}, Bearer token",
        format!("{bearer:.0} req/s"),
        "",
    );
    row("token / no auth", format!("{:.2}", bearer / plain), "≥ 0.8");
}
