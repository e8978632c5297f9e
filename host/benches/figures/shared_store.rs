//! The shared store, on a real MariaDB (Debian's, started here on a loopback
//! port with its own data directory): GET and create throughput with one and
//! with three servers on the same database, each beside the database's own
//! bound measured in the same run with the client library alone; a list page
//! over 100,000 rows; a rewrap of 100,000 rows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use credhost::keys::{Kek, Keyring};
use credhost::secret::Secret;
use credhost::service::{Cluster, ListRequest, Service};
use credhost::store::mysql::{StoreOptions, StoreTls};
use credhost::store::{MysqlStore, Store};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::json;

use super::fake_ssh::{self, FakeSsh};
use super::mariadb::MariaDb;
use super::{Credentials, load, open_router, percentile, record, registry, row, serve};

const PASSWORD: &str = "Bench-db-pw-9";
const ROWS: u64 = 100_000;
const WINDOW: Duration = Duration::from_secs(4);
const CONNECTIONS: usize = 32;

fn kek() -> Kek {
    Kek::from_bytes(Secret::new(vec![7; 32])).unwrap()
}

fn open(url: &str) -> Arc<MysqlStore> {
    let tls = StoreTls::default();
    let store = MysqlStore::open(&StoreOptions {
        url,
        password: Some(PASSWORD),
        tls: &tls,
        max_connections: 64,
    })
    .unwrap();
    store.set_integrity_key(credhost::store::mysql::RowMac::new(
        kek().derive(credhost::server::ROW_MAC),
    ));
    Arc::new(store)
}

/// A server over the shared database, as `serve` builds one.
async fn server(store: &Arc<MysqlStore>) -> (Arc<Service>, SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keyring::shared(store.clone(), kek()).unwrap();
    let service = Service::new(
        registry(credhost::capabilities::SshSettings::default()).await,
        store.clone() as Arc<dyn Store>,
        Arc::new(keys),
        super::settings(),
    )
    .unwrap()
    .with_cluster(Cluster::new(
        store.clone(),
        "bench".into(),
        Duration::from_secs(1),
        Duration::from_secs(10),
    ));
    let service = Arc::new(service);
    let addr = serve(open_router(service.clone(), &dir)).await;
    (service, addr, dir)
}

/// 100,000 rows sealed for real under the shared keyring's first key.
async fn fill(store: &Arc<MysqlStore>) {
    let keys = Keyring::shared(store.clone(), kek()).unwrap();
    let registry = registry(Default::default()).await;
    let policy = registry.policy("aes-256-gcm").unwrap().clone();
    let (key_id, key) = keys.current();
    for start in (1..=ROWS).step_by(5_000) {
        let ids: Vec<u64> = (start..start + 5_000).collect();
        let records = super::sealed_records(&policy, &key, key_id, &ids, |id| {
            format!("host-{:06}", (id * 7919) % ROWS)
        })
        .await;
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.import(&records).unwrap())
            .await
            .unwrap();
    }
}

/// Calls per second of `call` from `threads` threads for `WINDOW`; each
/// call gets a number no other call gets (below 100,000 per thread).
fn bare(threads: usize, call: impl Fn(usize) + Sync) -> f64 {
    let deadline = Instant::now() + WINDOW;
    let started = Instant::now();
    let done = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (call, done) = (&call, &done);
            scope.spawn(move || {
                let mut i = 0;
                while Instant::now() < deadline {
                    call(t * 100_000 + i);
                    i += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Reads of row 1 per second from the client library alone.
async fn bare_reads(store: &Arc<MysqlStore>) -> f64 {
    let pool = store.clone();
    tokio::task::spawn_blocking(move || {
        bare(CONNECTIONS, |_| {
            pool.get(1).unwrap().unwrap();
        })
    })
    .await
    .unwrap()
}

/// Create's statements per second from the client library alone; its
/// rows are named `bare-…` (see `forget_bare_rows`).
async fn bare_creates(store: &Arc<MysqlStore>) -> f64 {
    let pool = store.clone();
    tokio::task::spawn_blocking(move || bare(CONNECTIONS, |i| create_statements(&pool, "bare", i)))
        .await
        .unwrap()
}

/// What a create asks of the database: an id, the conflict check, the
/// row with its proof. `i` makes the name and address its own.
fn create_statements(store: &MysqlStore, prefix: &str, i: usize) {
    let id = store.reserve_id().unwrap();
    // Parsed into the row, never dialled.
    let ip = std::net::Ipv4Addr::from(0x7fc0_0000 + i as u32);
    let r = record(id, format!("{prefix}-{i}"), ip.into());
    assert!(store.conflict(&r).unwrap().is_none());
    let proof = format!(
        r#"{{"checked_us":1,"details":[{{"ip":"{ip}","port":22,"reason":"OK","message":""}}]}}"#
    );
    store.insert(&r, Some(&proof)).unwrap();
}

/// Pins every thread of process `pid` to `cpus` (`taskset` list syntax);
/// threads they start later inherit it. Thread by thread, since idle pool
/// threads exit meanwhile: one gone before its turn is no failure.
fn pin(pid: u32, cpus: &str) {
    let tasks = std::path::PathBuf::from(format!("/proc/{pid}/task"));
    for task in std::fs::read_dir(&tasks).unwrap() {
        let task = task.unwrap();
        let status = std::process::Command::new("taskset")
            .args(["-p", "-c", cpus])
            .arg(task.file_name())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(
            status.success() || !task.path().exists(),
            "taskset {cpus} {:?}",
            task.file_name()
        );
    }
}

/// Statements the database counted (MariaDB's `Questions`), to show a
/// create through credhost asks of it exactly what the bare client's does.
fn questions(db: &MariaDb) -> u64 {
    let text = db.sql("SHOW GLOBAL STATUS LIKE 'Questions'");
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Rows whose folded name is `LIKE` the pattern.
fn rows_named(db: &MariaDb, like: &str) -> u64 {
    db.sql(&format!(
        "SELECT COUNT(*) FROM bench.credhost_credentials WHERE name_key LIKE '{like}'"
    ))
    .trim()
    .parse()
    .unwrap()
}

/// Deletes the rows the bare client wrote (no real ciphertext in them).
fn forget_bare_rows(db: &MariaDb) {
    db.sql(
        "USE bench; DELETE h FROM credhost_hosts h JOIN credhost_credentials c \
         ON c.id = h.credential_id WHERE c.name_key LIKE 'bare-%'; \
         DELETE FROM credhost_credentials WHERE name_key LIKE 'bare-%';",
    );
}

/// Creates per second over `CONNECTIONS` connections spread over `addrs`,
/// the `i`th with the body `body(i)` (at most `count` of them).
async fn creates(
    addrs: &[SocketAddr],
    count: usize,
    body: impl Fn(usize) -> serde_json::Value + Send + Sync + 'static,
) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let body = Arc::new(body);
    // The clients on threads of their own, as the bare client's are, so
    // they do not queue behind the server's work on its workers.
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let deadline = Instant::now() + WINDOW;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let addr = addrs[c % addrs.len()];
        let (next, body) = (next.clone(), body.clone());
        tasks.push(clients.spawn(async move {
            let mut sender = super::connect(addr).await;
            let mut done = 0u64;
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let request = hyper::Request::post("/api/v1/security/credential")
                    .header("host", "127.0.0.1")
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body(i).to_string())))
                    .unwrap();
                sender.ready().await.unwrap();
                let response = sender.send_request(request).await.unwrap();
                let status = response.status();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                done += 1;
            }
            done
        }));
    }
    let rate = super::rate(tasks, started).await;
    clients.shutdown_background();
    rate
}

/// Creates of HOST credentials, each logging in to the next of `targets`.
async fn ssh_creates(addrs: &[SocketAddr], targets: Vec<SocketAddr>, prefix: &str) -> f64 {
    let prefix = prefix.to_string();
    creates(addrs, targets.len(), move |i| {
        let target = targets[i];
        json!({ "target_type": "HOST", "name": format!("{prefix}-{i}"),
            "ssh_credential_property": {
                "targets": [{ "ip": target.ip().to_string(), "port": target.port() }],
                "username": fake_ssh::USER, "type": "PASSWORD",
                "passphrase": fake_ssh::PASSWORD } })
    })
    .await
}

/// Creates through the benchmark's verifier that accepts every target at
/// once: what the server and the database allow, without logins. Its
/// targets are never reached, so any address does; each is its own.
async fn instant_creates(addrs: &[SocketAddr], first: u32, prefix: &str) -> f64 {
    let prefix = prefix.to_string();
    creates(addrs, 1_000_000, move |i| {
        let ip = std::net::Ipv4Addr::from(0x7f40_0000 + first + i as u32);
        json!({ "target_type": "INSTANT", "name": format!("{prefix}-{i}"),
            "instant_credential_property": {
                "targets": [{ "ip": ip.to_string(), "port": 22 }],
                "username": "bench", "passphrase": "Bench-pw-1" } })
    })
    .await
}

/// GETs per second over `CONNECTIONS` connections spread over `addrs`.
async fn gets(addrs: &[SocketAddr]) -> f64 {
    let per = CONNECTIONS / addrs.len();
    let runs = addrs.iter().map(|addr| {
        load(
            *addr,
            "/api/v1/security/credential/1",
            per,
            WINDOW,
            Credentials::None,
        )
    });
    futures::future::join_all(runs).await.into_iter().sum()
}

pub async fn shared_store() {
    let db = MariaDb::start();
    let url = db.database("bench", "bench", PASSWORD);
    let store = open(&url);
    let started = Instant::now();
    fill(&store).await;
    row(
        "mysql: import 100,000 sealed rows",
        format!("{:.1} s", started.elapsed().as_secs_f64()),
        "",
    );

    // A page of 10 by name, deep into 100,000 rows.
    let (one, addr, _dir) = server(&store).await;
    let mut samples = Vec::new();
    for n in 0..500 {
        let request = ListRequest {
            sort: "name".into(),
            page: 1 + n % 100,
            page_size: 10,
            ..Default::default()
        };
        let started = Instant::now();
        let page = one.list(request).await.unwrap();
        samples.push(started.elapsed());
        assert_eq!(page.contents.len(), 10);
    }
    row(
        "mysql: list page of 10 by name, 100k stored, p99",
        format!(
            "{:.2} ms",
            percentile(&mut samples, 0.99).as_secs_f64() * 1e3
        ),
        "≤ 10 ms",
    );

    // GET: the database's bound, one server, three servers.
    let bound = bare_reads(&store).await;
    let _warm = gets(&[addr]).await;
    let single = gets(&[addr]).await;
    // The database behind HTTP without credhost: a minimal server that
    // reads row 1 per request as credhost does (the blocking pool, the
    // same pool of connections) and answers credhost's bytes.
    let reader = store.clone();
    let reading = super::serve_minimal_with(
        super::reqwest_body(addr).await,
        Some(Arc::new(move || {
            reader.get(1).unwrap().unwrap();
        })),
    )
    .await;
    let http_bound = gets(&[reading]).await;
    let (_two, addr2, _d2) = server(&store).await;
    let (_three, addr3, _d3) = server(&store).await;
    let triple = gets(&[addr, addr2, addr3]).await;
    row(
        "mysql: GET row by id, client library alone (bound)",
        format!("{bound:.0} /s"),
        "",
    );
    row(
        "mysql: GET /credential/{id}, one server",
        format!("{single:.0} req/s"),
        "",
    );
    row(
        "mysql: GET /credential/{id}, three servers",
        format!("{triple:.0} req/s"),
        "",
    );
    row(
        "mysql: GET row by id behind minimal hyper (bound)",
        format!("{http_bound:.0} req/s"),
        "",
    );
    row(
        "mysql: GET one server / client library alone",
        format!("{:.2}", single / bound),
        "",
    );
    row(
        "mysql: GET one server / minimal hyper reading the row",
        format!("{:.2}", single / http_bound),
        "≥ 0.7",
    );

    // Create: the same statements straight from the client library, then
    // behind a minimal HTTP server, then through one and three servers.
    let before = questions(&db);
    let create_bound = bare_creates(&store).await;
    let bare_statements = (questions(&db) - before) as f64 / rows_named(&db, "bare-%") as f64;
    // A minimal hyper server that runs those statements per POST (on the
    // blocking pool, through the same pool of connections): what HTTP and
    // the load generator cost any server on these cores.
    let (writer, next) = (store.clone(), Arc::new(AtomicUsize::new(0)));
    let writing = super::serve_minimal_with(
        Bytes::from_static(br#"{"successful":true,"status":200,"data":{}}"#),
        Some(Arc::new(move || {
            let i = next.fetch_add(1, Ordering::Relaxed);
            create_statements(&writer, "bare-http", 4_000_000 + i);
        })),
    )
    .await;
    let create_http_bound = instant_creates(&[writing], 0, "unused").await;
    forget_bare_rows(&db);
    let before = questions(&db);
    let single_create = instant_creates(&[addr], 0, "one").await;
    let one_statements = (questions(&db) - before) as f64 / rows_named(&db, "one-%") as f64;
    let triple_create = instant_creates(&[addr, addr2, addr3], 1 << 20, "three").await;
    row(
        "mysql: create's statements, client library alone (bound)",
        format!("{create_bound:.0} /s"),
        "",
    );
    row(
        "mysql: statements per create, client library alone / one server",
        format!("{bare_statements:.2} / {one_statements:.2}"),
        "",
    );
    row(
        "mysql: create, one server (verifier answers at once)",
        format!("{single_create:.0} req/s"),
        "",
    );
    row(
        "mysql: create, three servers (verifier answers at once)",
        format!("{triple_create:.0} req/s"),
        "",
    );
    row(
        "mysql: create's statements behind minimal hyper (bound)",
        format!("{create_http_bound:.0} req/s"),
        "",
    );
    row(
        "mysql: create one server / client library alone",
        format!("{:.2}", single_create / create_bound),
        "≥ 0.7",
    );
    row(
        "mysql: create one server / minimal hyper doing its statements",
        format!("{:.2}", single_create / create_http_bound),
        "",
    );
    // The same bounds and servers with the database on a core of its own
    // and everything else on the other, as when the database has a host of
    // its own: then the database, not the shared CPU, sets the pace.
    pin(db.pid(), "1");
    pin(std::process::id(), "0");
    let split_bound = bare_reads(&store).await;
    let split_single = gets(&[addr]).await;
    let split_create_bound = bare_creates(&store).await;
    forget_bare_rows(&db);
    let split_create = instant_creates(&[addr], 2 << 20, "split").await;
    let split_triple = gets(&[addr, addr2, addr3]).await;
    let split_triple_create = instant_creates(&[addr, addr2, addr3], 3 << 20, "split3").await;
    pin(std::process::id(), "0,1");
    pin(db.pid(), "0,1");
    row(
        "mysql, db on its own core: GET, client library alone (bound)",
        format!("{split_bound:.0} /s"),
        "",
    );
    row(
        "mysql, db on its own core: GET, one server",
        format!("{split_single:.0} req/s"),
        "",
    );
    row(
        "mysql, db on its own core: GET, three servers",
        format!("{split_triple:.0} req/s"),
        "",
    );
    row(
        "mysql, db on its own core: GET one server / client library alone",
        format!("{:.2}", split_single / split_bound),
        "≥ 0.7",
    );
    row(
        "mysql, db on its own core: create's statements, client library alone (bound)",
        format!("{split_create_bound:.0} /s"),
        "",
    );
    row(
        "mysql, db on its own core: create, one server",
        format!("{split_create:.0} req/s"),
        "",
    );
    row(
        "mysql, db on its own core: create, three servers",
        format!("{split_triple_create:.0} req/s"),
        "",
    );
    row(
        "mysql, db on its own core: create one server / client library alone",
        format!("{:.2}", split_create / split_create_bound),
        "≥ 0.7",
    );

    // Creates that log in over SSH to in-process servers: both ends'
    // crypto on these two cores bounds them, whichever the store.
    let fake = FakeSsh::start(&fake_ssh::loopback_ips(100_000, 12_000)).await;
    let (first, second) = fake.addrs.split_at(6_000);
    let ssh_create = ssh_creates(&[addr], first.to_vec(), "ssh").await;
    let (embedded, dir) = super::service_with(Vec::new()).await;
    let embedded_addr = serve(open_router(embedded, &dir)).await;
    let embedded_create = ssh_creates(&[embedded_addr], second.to_vec(), "redb").await;
    row(
        "mysql: create with an SSH login, one server",
        format!("{ssh_create:.0} req/s"),
        "",
    );
    row(
        "create with an SSH login, embedded store",
        format!("{embedded_create:.0} req/s"),
        "",
    );

    // The rewrap of the 100,000 sealed rows (and the creates since).
    let total: u64 = store.sealing_counts().unwrap().iter().map(|c| c.rows).sum();
    if std::env::var_os("REWRAP_STEPS").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("credhost::service::rewrap=debug")
            .with_writer(std::io::stderr)
            .try_init();
    }
    let started = Instant::now();
    one.rotate_key().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    while one.rewrap_status().state == credhost::service::RewrapState::Running {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    let status = one.rewrap_status();
    assert_eq!(status.done, total, "{status:?}");
    row(
        &format!("mysql: rewrap of {total} rows"),
        format!("{:.0} rows/s", total as f64 / took.as_secs_f64()),
        "≥ 20,000 rows/s",
    );
}
