//! Three real `credhost` servers on one real MariaDB: one credential set,
//! shared keys, one rewrap at a time, and a database that goes away and
//! comes back.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use support::fake_ssh::{self, FakeSsh};
use support::mariadb::MariaDb;
use support::server::{Options, Server, err_code, message, populate, refused_at_start};

const DB_PASSWORD: &str = "Cluster-db-pw-5521";
const CREATE: &str = "/api/v1/security/credential";

/// Servers that share one database, each with its own data directory.
struct Cluster {
    servers: Vec<Arc<Server>>,
    url: String,
    kek: String,
}

fn options(url: &str, kek: &str, extra: &[(&str, &str)]) -> Options {
    let mut envs = vec![
        ("CREDHOST_STORE".to_string(), url.to_string()),
        (
            "CREDHOST_STORE_PASSWORD".to_string(),
            DB_PASSWORD.to_string(),
        ),
        ("CREDHOST_KEK".to_string(), kek.to_string()),
    ];
    envs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Options {
        envs,
        config: Some("[cluster]\nheartbeat_ms = 200\nlease_ms = 2000\n".into()),
        ..Default::default()
    }
}

/// `options` with no heartbeat within a test: a server learns what others
/// did only from what it meets.
fn quiet(url: &str, kek: &str) -> Options {
    Options {
        config: Some("[cluster]\nheartbeat_ms = 600000\nlease_ms = 2000\n".into()),
        ..options(url, kek, &[])
    }
}

impl Cluster {
    /// Starts `n` servers at once (they race to migrate the empty database).
    fn start(db: &MariaDb, name: &str, n: usize, extra: &[(&str, &str)]) -> Self {
        let url = db.database(name, name, DB_PASSWORD);
        let kek = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
        let servers = std::thread::scope(|scope| {
            let starting: Vec<_> = (0..n)
                .map(|_| scope.spawn(|| Arc::new(Server::start(options(&url, &kek, extra)))))
                .collect();
            starting.into_iter().map(|s| s.join().unwrap()).collect()
        });
        Self { servers, url, kek }
    }
}

/// Copies `column` of `table`'s row `from` into its row `to`, bytes as
/// they are: what someone with the database account can do without the KEK.
fn copy_cell(db: &MariaDb, table: &str, column: &str, key: &str, from: u64, to: u64) {
    let hex = db.sql(&format!(
        "SELECT HEX({column}) FROM {table} WHERE {key} = {from}"
    ));
    db.sql(&format!(
        "UPDATE {table} SET {column} = UNHEX('{}') WHERE {key} = {to}",
        hex.trim()
    ));
}

fn host_body(name: &str, addr: std::net::SocketAddr) -> Value {
    json!({ "target_type": "HOST", "name": name, "ssh_credential_property": {
        "targets": [{ "ip": addr.ip().to_string(), "port": addr.port() }],
        "username": fake_ssh::USER, "type": "PASSWORD", "passphrase": fake_ssh::PASSWORD } })
}

/// Servers started together on a new database all start. They race to
/// migrate it and to probe that it enforces foreign keys; the database may
/// end a probe as a deadlock's victim, which is a reason to try again, not
/// to refuse to start.
#[test]
fn servers_started_together_on_a_new_database_all_start() {
    let db = MariaDb::start();
    for round in 0..3 {
        let cluster = Cluster::start(&db, &format!("together{round}"), 6, &[]);
        assert_eq!(cluster.servers.len(), 6);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_share_one_credential_set() {
    let db = MariaDb::start();
    let cluster = Cluster::start(&db, "shared", 3, &[]);
    let [a, b, c] = [0, 1, 2].map(|i| cluster.servers[i].clone());
    let fake = FakeSsh::start(&fake_ssh::loopback_ips(52_000, 8)).await;

    // The same create, sent to all three at once: exactly one wins.
    let body = host_body("web", fake.addrs[0]);
    let answers =
        futures::future::join_all(cluster.servers.iter().map(|s| s.post(CREATE, body.clone())))
            .await;
    let won: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, e)| e)
        .collect();
    assert_eq!(won.len(), 1, "{answers:?}");
    for (status, envelope) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 400, "{envelope}");
        assert_eq!(err_code(envelope), "Credential.Name.AlreadyExists");
    }
    let id = won[0]["data"]["credential_id"].as_u64().unwrap();

    // Written on one, read on the others at once.
    for server in [&a, &b, &c] {
        let (status, envelope) = server.get(&format!("{CREATE}/{id}")).await;
        assert_eq!(status, 200, "{envelope}");
        assert_eq!(envelope["data"]["name"], "web");
    }
    // A name differing only in case, or an ip another credential holds,
    // is refused by whichever server gets it.
    let (_, envelope) = b.post(CREATE, host_body("WEB ", fake.addrs[1])).await;
    assert_eq!(err_code(&envelope), "Credential.Name.AlreadyExists");
    let (_, envelope) = c.post(CREATE, host_body("other", fake.addrs[0])).await;
    assert_eq!(err_code(&envelope), "Credential.Host.AlreadyExists");

    // Updated on B (moved to another host), seen by C with the update's
    // proof as its last validation; the secret opens on every server.
    let moved = fake.addrs[7];
    let mut update = host_body("web-renamed", moved);
    update.as_object_mut().unwrap().remove("target_type");
    let (status, envelope) = b.patch(&format!("{CREATE}/{id}"), update).await;
    assert_eq!(status, 200, "{envelope}");
    let (_, envelope) = c.get("/api/v1/security/credentials?key_word=RENAMED").await;
    assert_eq!(envelope["data"]["page"]["total_elements"], 1, "{envelope}");
    let (status, envelope) = c
        .get(&format!(
            "/api/v1/security/credentials/validations?credential_id_list={id}"
        ))
        .await;
    assert_eq!(status, 200, "{envelope}");
    let target = &envelope["data"]["contents"][0]["details"][0]["target"];
    assert_eq!(
        (target["ip"].as_str(), target["port"].as_u64()),
        (
            Some(moved.ip().to_string().as_str()),
            Some(u64::from(moved.port()))
        ),
        "{envelope}"
    );
    for server in [&a, &b, &c] {
        let detail = server.validate_stored(id).await;
        assert_eq!(detail["connection_result"], "SUCCESS", "{detail}");
    }

    // Deleted on C, gone on A; ids are never handed out twice.
    let (status, _) = c.delete(&format!("{CREATE}/{id}"), None).await;
    assert_eq!(status, 200);
    let (status, _) = a.get(&format!("{CREATE}/{id}")).await;
    assert_eq!(status, 404);
    let mut seen = vec![id];
    for (i, server) in [&a, &b, &c].into_iter().enumerate() {
        let (status, envelope) = server
            .post(CREATE, host_body(&format!("n{i}"), fake.addrs[2 + i]))
            .await;
        assert_eq!(status, 200, "{envelope}");
        let new = envelope["data"]["credential_id"].as_u64().unwrap();
        assert!(!seen.contains(&new), "id {new} handed out twice");
        seen.push(new);
    }

    // A batch delete on B, in one transaction of the shared store: the
    // first id was deleted already, the two next go, the last one stays.
    let (status, envelope) = b
        .delete(
            "/api/v1/security/credentials",
            Some(json!({ "credential_id_list": [seen[1], seen[0], seen[2]] })),
        )
        .await;
    assert_eq!(status, 200, "{envelope}");
    assert_eq!(
        envelope["data"],
        json!({ "deleted": [seen[1], seen[2]], "not_found": [seen[0]] })
    );
    for (i, server) in [&c, &a, &a, &c].into_iter().enumerate() {
        let (status, _) = server.get(&format!("{CREATE}/{}", seen[i])).await;
        assert_eq!(status, if i == 3 { 200 } else { 404 }, "id {}", seen[i]);
    }

    // Every server sees all three, alive, with the same plugins.
    let (status, envelope) = a.get("/api/v1/cluster").await;
    assert_eq!(status, 200, "{envelope}");
    let view = &envelope["data"];
    assert_eq!(view["store"], "mysql");
    let servers = view["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 3, "{view}");
    assert!(servers.iter().all(|s| s["alive"] == true), "{view}");
    assert_eq!(view["plugin_sets_differ"], false);

    // Nothing secret in the database or any log.
    let dump = db.sql(
        "SELECT HEX(body), HEX(wrapped) FROM shared.credhost_credentials, shared.credhost_keys",
    );
    let secret_hex = hex::encode_upper(fake_ssh::PASSWORD);
    assert!(
        !dump.contains(&secret_hex),
        "a passphrase is in the database in clear"
    );
    for server in [&a, &b, &c] {
        assert!(!server.log_text().contains(fake_ssh::PASSWORD));
        assert!(!server.log_text().contains(DB_PASSWORD));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_another_kek_refuses_to_start() {
    let db = MariaDb::start();
    let cluster = Cluster::start(&db, "kek", 1, &[]);
    let other = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_credhost"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tempfile::tempdir().unwrap().path())
        .env("CREDHOST_STORE", &cluster.url)
        .env("CREDHOST_STORE_PASSWORD", DB_PASSWORD)
        .env("CREDHOST_KEK", other)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("key-encryption key"), "{said}");
    assert!(!said.contains(DB_PASSWORD), "{said}");
}

#[test]
fn the_sdk_alternates_between_servers() {
    let db = MariaDb::start();
    let sshd = support::sshd::Sshd::start();
    let cluster = Cluster::start(&db, "sdk", 3, &[("CREDHOST_PASSWORD", "Sdk-cluster-pw-1")]);
    let servers: Vec<String> = cluster
        .servers
        .iter()
        .map(|s| s.base.strip_prefix("http://").unwrap().to_string())
        .collect();
    let (host, port) = servers[0].rsplit_once(':').unwrap();
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/sdk/drive.py");
    let python = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        python.exists(),
        "run tests/run, which installs the obshell SDK"
    );
    let output = std::process::Command::new(python)
        .arg(script)
        .args([
            host,
            port,
            "Sdk-cluster-pw-1",
            &sshd.addr.port().to_string(),
            support::sshd::USER,
            support::sshd::PASSWORD,
        ])
        .env("CREDHOST_SERVERS", servers.join(","))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let logs: Vec<String> = cluster.servers.iter().map(|s| s.log_text()).collect();
    assert!(
        output.status.success() && stdout.contains("all nine credential methods behaved"),
        "{stdout}\n{}\n{logs:#?}",
        String::from_utf8_lossy(&output.stderr)
    );
    // No server logged the SSH password.
    for log in &logs {
        assert!(!log.contains(support::sshd::PASSWORD));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_accepted_by_one_server_is_refused_by_the_others() {
    let db = MariaDb::start();
    let cluster = Cluster::start(&db, "replay", 2, &[("CREDHOST_PASSWORD", "Replay-pw-77")]);
    let [a, b] = [0, 1].map(|i| cluster.servers[i].clone());
    let (_, secret) = a.get("/api/v1/secret").await;
    let (_, other) = b.get("/api/v1/secret").await;
    assert_eq!(
        secret["data"]["public_key"], other["data"]["public_key"],
        "one RSA key for the cluster"
    );
    let to_a = credhost::client::Client::connect(&a.base, "Replay-pw-77")
        .await
        .unwrap();
    let to_b = credhost::client::Client::connect(&b.base, "Replay-pw-77")
        .await
        .unwrap();
    let target = "/api/v1/security/credentials";
    let sealed = to_a.seal(&to_a.claims(target), None);
    let (status, envelope) = to_a
        .send(reqwest::Method::GET, target, &sealed)
        .await
        .unwrap();
    assert_eq!(status, 200, "{envelope}");
    let (status, envelope) = to_b
        .send(reqwest::Method::GET, target, &sealed)
        .await
        .unwrap();
    assert_eq!(status, 401, "{envelope}");
    assert_eq!(err_code(&envelope), "Security.Authentication.Replayed");
    // A fresh header is welcome on either.
    let (status, _) = to_b.call(reqwest::Method::GET, target, None).await.unwrap();
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_with_writers_elsewhere_and_the_rewrapper_killed() {
    const ROWS: u32 = 2500;
    let db = MariaDb::start();
    let cluster = Cluster::start(&db, "rotate", 3, &[]);
    let fake = FakeSsh::start(&fake_ssh::loopback_ips(54_000, ROWS + 400)).await;
    let ids = populate(
        &cluster.servers[0],
        &fake.addrs[..ROWS as usize],
        "bulk",
        16,
    )
    .await;

    // Writers on B and C while A rotates.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for (w, server) in cluster.servers[1..].iter().enumerate() {
        let (server, stop, written) = (server.clone(), stop.clone(), written.clone());
        let addrs: Vec<_> = fake.addrs[ROWS as usize + w * 200..][..200].to_vec();
        writers.push(tokio::spawn(async move {
            for (i, addr) in addrs.into_iter().enumerate() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let (status, envelope) = server
                    .post(CREATE, host_body(&format!("w{w}-{i}"), addr))
                    .await;
                assert_eq!(status, 200, "{envelope}");
                written.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    let (status, envelope) = cluster.servers[0]
        .post("/api/v1/security/keys/rotate", json!({}))
        .await;
    assert_eq!(status, 200, "{envelope}");
    let new_key = envelope["data"]["key_id"].clone();

    // Kill A while it rewraps; B or C takes the lease over and finishes.
    // Progress shows on B while A rewraps.
    let deadline = Instant::now() + Duration::from_secs(30);
    let at_kill = loop {
        let (_, envelope) = cluster.servers[1].get("/api/v1/security/encryption").await;
        let rewrap = envelope["data"]["rewrap"].clone();
        if rewrap["done"].as_u64().unwrap_or(0) > 0 {
            cluster.servers[0].kill_now();
            break rewrap;
        }
        assert!(Instant::now() < deadline, "{envelope}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(at_kill["state"], "running", "{at_kill}");
    assert!(at_kill["remaining"].as_u64().unwrap() > 0, "{at_kill}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.await.unwrap();
    }

    let survivor = &cluster.servers[1];
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let (_, envelope) = survivor.get("/api/v1/security/encryption").await;
        let data = envelope["data"].clone();
        let under_new: u64 = data["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["id"] == new_key)
            .map(|k| k["rows"].as_u64().unwrap())
            .sum();
        let all: u64 = data["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["rows"].as_u64().unwrap())
            .sum();
        if data["rewrap"]["state"] == "idle" && under_new == all {
            break data;
        }
        assert!(
            Instant::now() < deadline,
            "the rewrap was not finished: {data}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status["current_key_id"], new_key, "{status}");
    // Every row opens, on every surviving server.
    for server in &cluster.servers[1..] {
        server.every_row_opens(&ids).await;
    }
    assert!(written.load(Ordering::SeqCst) > 0);
    assert!(
        cluster.servers[1..]
            .iter()
            .any(|s| s.log_text().contains("took the rewrap lease")),
        "no survivor took the rewrap over"
    );
}

/// A key made on one server opens rows on another at once, before any
/// heartbeat could tell it: the other reads the key from the database when
/// it first meets it; a key replacement retried on it is not added again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_made_on_one_server_opens_on_another_at_once() {
    let db = MariaDb::start();
    let url = db.database("freshkey", "freshkey", DB_PASSWORD);
    let kek = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    // No heartbeat within the test: B learns of the key only from a row.
    let (a, b) = (
        Server::start(quiet(&url, &kek)),
        Server::start(quiet(&url, &kek)),
    );
    let fake = FakeSsh::start(&fake_ssh::loopback_ips(64_000, 1)).await;

    let (status, envelope) = a.post("/api/v1/security/keys/rotate", json!({})).await;
    assert_eq!(status, 200, "{envelope}");
    let (status, created) = a.post(CREATE, host_body("fresh", fake.addrs[0])).await;
    assert_eq!(status, 200, "{created}");
    let id = created["data"]["credential_id"].as_u64().unwrap();
    let detail = b.validate_stored(id).await;
    assert_eq!(detail["connection_result"], "SUCCESS", "{detail}");
    let (_, envelope) = b.get("/api/v1/security/encryption").await;
    assert_eq!(
        envelope["data"]["current_key_id"], 2,
        "B read the new keyring: {envelope}"
    );

    // obshell's key replacement made on A, and retried on B before B
    // heard of it: B finishes the rewrap under A's key, and adds none.
    let path = "/api/v1/security/credential/encrypt-secret-key";
    let key = json!({ "aes_key": base64::engine::general_purpose::STANDARD.encode([9u8; 32]) });
    let (status, envelope) = a.put(path, key.clone()).await;
    assert_eq!(status, 200, "{envelope}");
    let (status, envelope) = b.put(path, key).await;
    assert_eq!(status, 200, "{envelope}");
    let (_, envelope) = b.get("/api/v1/security/encryption").await;
    assert_eq!(envelope["data"]["current_key_id"], 3, "{envelope}");
}

/// Two servers update one credential at once: the update that commits
/// second was decided on the row before the first, and is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_racing_another_server_s_is_refused() {
    let db = MariaDb::start();
    let cluster = Cluster::start(&db, "racing", 2, &[]);
    let [a, b] = [0, 1].map(|i| cluster.servers[i].clone());
    let fake = FakeSsh::start_with_latency(
        &fake_ssh::loopback_ips(65_000, 1),
        Duration::from_millis(1_000),
    )
    .await;
    let (status, created) = a.post(CREATE, host_body("first", fake.addrs[0])).await;
    assert_eq!(status, 200, "{created}");
    let path = format!("{CREATE}/{}", created["data"]["credential_id"]);
    let first = {
        let (a, path, body) = (a.clone(), path.clone(), host_body("from-a", fake.addrs[0]));
        tokio::spawn(async move { a.patch(&path, body).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, second) = b.patch(&path, host_body("from-b", fake.addrs[0])).await;
    let (first_status, first) = first.await.unwrap();
    assert_eq!(first_status, 200, "{first}");
    assert_eq!(
        (status, err_code(&second)),
        (409, "Credential.Changed"),
        "{second}"
    );
    let (_, now) = b.get(&path).await;
    assert_eq!(now["data"]["name"], "from-a", "{now}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_restarts_under_load() {
    let mut db = MariaDb::start();
    let cluster = Cluster::start(&db, "restart", 1, &[]);
    let server = cluster.servers[0].clone();
    let fake = FakeSsh::start(&fake_ssh::loopback_ips(58_000, 400)).await;
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for (i, addr) in fake.addrs.iter().enumerate() {
        if i == 40 {
            db.kill();
        }
        if i == 80 {
            db.start_again();
        }
        let (status, envelope) = server
            .post(CREATE, host_body(&format!("r{i}"), *addr))
            .await;
        match status {
            200 => acknowledged.push(envelope["data"]["credential_id"].as_u64().unwrap()),
            503 => {
                // A clean refusal in the envelope, naming no secret.
                assert!(err_code(&envelope).starts_with("Common."), "{envelope}");
                assert!(!envelope.to_string().contains(DB_PASSWORD));
                refused += 1;
            }
            other => panic!("{other}: {envelope}"),
        }
        if i >= 80 && acknowledged.len() >= 60 {
            break;
        }
    }
    assert!(refused > 0, "no request saw the database down");
    // After it came back: requests succeed, and nothing acknowledged is lost.
    for id in &acknowledged {
        let (status, envelope) = server.get(&format!("{CREATE}/{id}")).await;
        assert_eq!(status, 200, "{envelope}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_set_moves_between_stores_and_the_schema_migrates() {
    let db = MariaDb::start();
    let fake = FakeSsh::start(&fake_ssh::loopback_ips(60_000, 30)).await;
    // A set of 30 on the embedded store, one of them rotated to a second key.
    let mut embedded = Server::start(Options::default());
    let ids = populate(&embedded, &fake.addrs, "moved", 8).await;
    let (status, _) = embedded
        .post("/api/v1/security/keys/rotate", json!({}))
        .await;
    assert_eq!(status, 200);
    support::server::rewrap_settled(&embedded).await;
    embedded.stop();

    // A database at the previous schema version, migrated by hand.
    let url = db.database("moved", "moved", DB_PASSWORD);
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_credhost"))
            .args(args)
            .env("CREDHOST_STORE_PASSWORD", DB_PASSWORD)
            .env(
                "CREDHOST_KEK",
                base64::engine::general_purpose::STANDARD.encode([3u8; 32]),
            )
            .output()
            .unwrap()
    };
    let out = cli(&["store", "migrate", &url, "--to", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        db.sql("SELECT MAX(version) FROM moved.credhost_migrations")
            .trim(),
        "1"
    );
    assert_eq!(
        db.sql("SHOW TABLES FROM moved LIKE 'credhost_replay'")
            .trim(),
        ""
    );

    // Copied in (which migrates to the latest), counted, every row opened.
    let from = format!("redb:{}", embedded.data_dir().display());
    let out = cli(&["store", "copy", "--from", &from, "--to", &url]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("copied 30 credentials") && said.contains("every row opens"),
        "{said}"
    );
    assert_eq!(
        db.sql("SELECT MAX(version) FROM moved.credhost_migrations")
            .trim(),
        "2"
    );
    // A second copy into the same database is refused: it is not empty.
    let out = cli(&["store", "copy", "--from", &from, "--to", &url]);
    assert!(!out.status.success());

    // A server on the database opens every row.
    let server = Server::start(Options {
        envs: vec![
            ("CREDHOST_STORE".into(), url.clone()),
            ("CREDHOST_STORE_PASSWORD".into(), DB_PASSWORD.into()),
            (
                "CREDHOST_KEK".into(),
                base64::engine::general_purpose::STANDARD.encode([3u8; 32]),
            ),
        ],
        ..Default::default()
    });
    server.every_row_opens(&ids).await;
    drop(server);

    // And back out to a fresh embedded directory.
    let back = tempfile::tempdir().unwrap();
    let to = format!("redb:{}", back.path().join("data").display());
    let out = cli(&["store", "copy", "--from", &url, "--to", &to]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("copied 30 credentials"), "{said}");
}

/// Someone who can write to the database but has no key-encryption key (an
/// administrator, another application, a man in the middle) changes rows:
/// nothing they wrote is believed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_changed_in_the_database_are_refused() {
    let db = MariaDb::start();
    let cluster = Cluster::start(&db, "tamper", 1, &[]);
    let server = cluster.servers[0].clone();
    let fake = FakeSsh::start(&fake_ssh::loopback_ips(62_000, 2)).await;
    let (_, web) = server.post(CREATE, host_body("web", fake.addrs[0])).await;
    let (_, other) = server.post(CREATE, host_body("other", fake.addrs[1])).await;
    let web = web["data"]["credential_id"].as_u64().unwrap();
    let other = other["data"]["credential_id"].as_u64().unwrap();
    let token = server.token("reader", "read");
    let (status, _) = server
        .call_as(
            &token,
            reqwest::Method::GET,
            "/api/v1/security/credentials",
            None,
        )
        .await;
    assert_eq!(status, 200);

    let proofs = async || {
        let (status, envelope) = server
            .get(&format!(
                "/api/v1/security/credentials/validations?credential_id_list={web},{other}"
            ))
            .await;
        assert_eq!(status, 200, "{envelope}");
        envelope["data"]["contents"].as_array().unwrap().len()
    };
    assert_eq!(proofs().await, 2, "each create keeps its proof");
    // Web's proof is now other's (a moved proof), and other's a made-up
    // success in the shape of an unsealed record: neither is shown.
    copy_cell(
        &db,
        "tamper.credhost_validations",
        "doc",
        "credential_id",
        other,
        web,
    );
    db.sql(&format!(
        "UPDATE tamper.credhost_validations SET doc = '{{\"credential_id\":{other},\"succeeded_count\":1}}' \
         WHERE credential_id = {other}"
    ));
    assert_eq!(proofs().await, 0, "a changed proof was shown");

    // Web's row now holds other's body (its targets, its secret); the
    // token's scope is raised to admin.
    copy_cell(&db, "tamper.credhost_credentials", "body", "id", other, web);
    db.sql(
        "UPDATE tamper.credhost_tokens SET doc = REPLACE(doc, '\"scope\":\"read\"', '\"scope\":\"admin\"')",
    );

    let (status, envelope) = server.get(&format!("{CREATE}/{web}")).await;
    assert_ne!(status, 200, "a moved row was served: {envelope}");
    assert!(!envelope.to_string().contains(fake_ssh::PASSWORD));
    let (status, envelope) = server
        .post(
            "/api/v1/security/credentials/validate",
            json!({ "credential_id_list": [web] }),
        )
        .await;
    let verdict = envelope["data"]["contents"][0]["details"][0]["connection_result"].clone();
    assert!(status != 200 || verdict != "SUCCESS", "{envelope}");
    // The untouched row still opens.
    server.every_row_opens(&[other]).await;

    // A server that reads the tokens afresh grants the changed one nothing.
    let fresh = Server::start(options(&cluster.url, &cluster.kek, &[]));
    let (status, envelope) = fresh
        .call_as(&token, reqwest::Method::GET, "/api/v1/tokens", None)
        .await;
    assert_eq!(status, 401, "{envelope}");
}

/// Someone with the database account and a copy of a key's row from when
/// it was live puts the key back after its retirement and names it
/// current: every server would re-seal every secret under a key they hold
/// (a leaked one, the reason it was rotated away). The servers refuse the
/// changed keyring and keep sealing under the newest key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_key_put_back_in_the_database_is_not_made_current() {
    let db = MariaDb::start();
    let cluster = Cluster::start(&db, "rollback", 1, &[]);
    let server = cluster.servers[0].clone();
    let fake = FakeSsh::start(&fake_ssh::loopback_ips(61_000, 1)).await;
    let (status, created) = server.post(CREATE, host_body("web", fake.addrs[0])).await;
    assert_eq!(status, 200, "{created}");
    let id = created["data"]["credential_id"].as_u64().unwrap();
    let old_row = db.sql("SELECT HEX(wrapped) FROM rollback.credhost_keys WHERE id = 1");
    let (status, envelope) = server.post("/api/v1/security/keys/rotate", json!({})).await;
    assert_eq!(status, 200, "{envelope}");
    support::server::rewrap_settled(&server).await;
    let retired = || db.sql("SELECT COUNT(*) FROM rollback.credhost_retired_keys WHERE id = 1");
    for _ in 0..100 {
        if retired().trim() == "1" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(retired().trim(), "1", "key 1 was not retired");

    db.sql(&format!(
        "INSERT INTO rollback.credhost_keys (id, created_us, wrapped) VALUES (1, 0, UNHEX('{}'))",
        old_row.trim()
    ));
    db.sql("UPDATE rollback.credhost_settings SET value = '1' WHERE name = 'current_key'");
    // Several heartbeats.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let (_, envelope) = server.get("/api/v1/security/encryption").await;
    assert_eq!(envelope["data"]["current_key_id"], 2, "{envelope}");
    let sealed_by = db.sql(&format!(
        "SELECT key_id FROM rollback.credhost_credentials WHERE id = {id}"
    ));
    assert_eq!(sealed_by.trim(), "2");
    assert!(
        server
            .log_text()
            .contains("refused (the database was changed)"),
        "{}",
        server.log_text()
    );
    // A server started now refuses the changed keyring outright.
    let fresh =
        std::panic::catch_unwind(|| Server::start(options(&cluster.url, &cluster.kek, &[])));
    assert!(fresh.is_err(), "a server started on a rolled-back keyring");
    // Nor is it fooled by a database with no trace of the newer key: its
    // row gone, and the record of key 1's retirement too. The rows sealed
    // under key 2 still say it existed.
    db.sql(
        "SET foreign_key_checks = 0; DELETE FROM rollback.credhost_keys WHERE id = 2; \
         DELETE FROM rollback.credhost_retired_keys WHERE id = 1",
    );
    let (mut command, _config) = serve_command(&options(&cluster.url, &cluster.kek, &[]));
    let said = refused_at_start(&mut command, "a keyring rolled back without a trace");
    assert!(said.contains("under key 2"), "{said}");
}

/// A database write that keeps servers from taking in a rotation (a row
/// of a key no server can read) does not leave them sealing under the key
/// rotated away, which may be why it was rotated: they refuse to seal
/// (503) until they can take the new key in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_a_server_cannot_take_in_stops_its_sealing() {
    let db = MariaDb::start();
    let cluster = Cluster::start(&db, "stuck", 1, &[]);
    let server = cluster.servers[0].clone();
    let fake = FakeSsh::start(&fake_ssh::loopback_ips(61_100, 2)).await;
    let (status, created) = server.post(CREATE, host_body("a", fake.addrs[0])).await;
    assert_eq!(status, 200, "{created}");
    db.sql(
        "INSERT INTO stuck.credhost_retired_keys (id, created_us, retired_us) \
         VALUES (4294967295, 0, 0)",
    );
    let (status, envelope) = server.post("/api/v1/security/keys/rotate", json!({})).await;
    assert_eq!(status, 503, "{envelope}");
    let current = db.sql("SELECT value FROM stuck.credhost_settings WHERE name = 'current_key'");
    assert_eq!(current.trim(), "2", "the rotation was not recorded");
    // Several heartbeats: the refresh keeps failing.
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let (status, envelope) = server.post(CREATE, host_body("b", fake.addrs[1])).await;
    assert_eq!(status, 503, "{envelope}");
    assert!(message(&envelope).contains("key 2"), "{envelope}");
    let under_old = db.sql("SELECT COUNT(*) FROM stuck.credhost_credentials WHERE key_id = 1");
    assert_eq!(under_old.trim(), "1");
    // Nor does a rewrap re-seal the row under it, as a policy swap asks.
    server.swap_policy("chacha20-poly1305").await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let resealed = db.sql(
        "SELECT COUNT(*) FROM stuck.credhost_credentials \
         WHERE key_id = 1 AND policy = 'chacha20-poly1305'",
    );
    assert_eq!(resealed.trim(), "0");
    // The row taken out, the server takes key 2 in and seals again.
    db.sql("DELETE FROM stuck.credhost_retired_keys WHERE id = 4294967295");
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let (status, envelope) = server.post(CREATE, host_body("b", fake.addrs[1])).await;
    assert_eq!(status, 200, "{envelope}");
    let id = envelope["data"]["credential_id"].as_u64().unwrap();
    let sealed_by = db.sql(&format!(
        "SELECT key_id FROM stuck.credhost_credentials WHERE id = {id}"
    ));
    assert_eq!(sealed_by.trim(), "2");
}

/// A rewrap that fails on the same row every run is started again by the
/// heartbeat less and less often, not on every beat (each run counts the
/// rows, and logs and audits its failure).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrap_that_keeps_failing_backs_off() {
    let db = MariaDb::start();
    let cluster = Cluster::start(&db, "backoff", 1, &[]);
    let server = cluster.servers[0].clone();
    let fake = FakeSsh::start(&fake_ssh::loopback_ips(61_200, 2)).await;
    let mut ids = Vec::new();
    for (i, name) in ["a", "b"].iter().enumerate() {
        let (status, created) = server.post(CREATE, host_body(name, fake.addrs[i])).await;
        assert_eq!(status, 200, "{created}");
        ids.push(created["data"]["credential_id"].as_u64().unwrap());
    }
    // One row holds another's body: refused whenever it is read.
    copy_cell(
        &db,
        "backoff.credhost_credentials",
        "body",
        "id",
        ids[1],
        ids[0],
    );
    let (status, envelope) = server.post("/api/v1/security/keys/rotate", json!({})).await;
    assert_eq!(status, 200, "{envelope}");
    // 20 heartbeats of 200 ms.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let runs = server.log_text().matches("rewrap stopped").count();
    assert!((1..=4).contains(&runs), "{runs} failed runs in 4 s");
}

/// Key retirement counts on the foreign key from rows to keys. A database
/// that would not enforce it (tables of an engine without foreign keys
/// and transactions) is refused at start, saying why; one whose accounts
/// start with the checks off gets them turned on and is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_ignores_foreign_keys_is_refused() {
    let kek = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let aria = MariaDb::start_with(&["--default-storage-engine=Aria".into()]);
    let url = aria.database("aria", "aria", DB_PASSWORD);
    let (mut command, _config) = serve_command(&options(&url, &kek, &[]));
    // Refused, and again on the next try (the probe's row did not stay
    // behind to make it pass or fail for another reason).
    for _ in 0..2 {
        let said = refused_at_start(&mut command, "an Aria database");
        assert!(said.contains("foreign key"), "{said}");
    }

    let unchecked = MariaDb::start_with(&["--init-connect=SET foreign_key_checks = 0".into()]);
    let url = unchecked.database("unchecked", "unchecked", DB_PASSWORD);
    let server = Server::start(options(&url, &kek, &[]));
    let (status, envelope) = server.get("/api/v1/info").await;
    assert_eq!(status, 200, "{envelope}");
}

/// `credhost serve` as `options` start it, for a start that should fail;
/// the settings file lives as long as the second value.
fn serve_command(options: &Options) -> (std::process::Command, tempfile::NamedTempFile) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_credhost"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tempfile::tempdir().unwrap().path());
    for (key, value) in &options.envs {
        command.env(key, value);
    }
    let config = tempfile::NamedTempFile::new().unwrap();
    if let Some(text) = &options.config {
        std::fs::write(config.path(), text).unwrap();
        command.arg("--config").arg(config.path());
    }
    (command, config)
}

/// Any account of the database server may hold the migration lock (its
/// name is global): a server whose schema is current starts anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_migration_lock_does_not_stop_a_current_server() {
    use mysql::prelude::Queryable;
    let db = MariaDb::start();
    let cluster = Cluster::start(&db, "locked", 1, &[]);
    let squatter_url = db.database("elsewhere", "squatter", DB_PASSWORD);
    let opts = mysql::OptsBuilder::from_opts(mysql::Opts::from_url(&squatter_url).unwrap())
        .pass(Some(DB_PASSWORD));
    let mut squatter = mysql::Conn::new(opts).unwrap();
    let held: Option<i64> = squatter
        .query_first("SELECT GET_LOCK('credhost_migrations', 0)")
        .unwrap();
    assert_eq!(held, Some(1));
    let second = Server::start(options(&cluster.url, &cluster.kek, &[]));
    let (status, envelope) = second.get("/api/v1/info").await;
    assert_eq!(status, 200, "{envelope}");
    drop(squatter);
}

/// One server has the OB verifier, the other has not: the cluster view says
/// so, and the other answers UNSUPPORTED for an OB credential, never an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_with_different_plugins_are_flagged() {
    let db = MariaDb::start();
    let cluster = Cluster::start(&db, "mixed", 1, &[]);
    let plain = cluster.servers[0].clone();
    let plugins = support::plugin_dir(&["ob_verifier"]);
    let mut with_ob = options(&cluster.url, &cluster.kek, &[]);
    with_ob.args = vec!["--plugin-dir".into(), plugins.path().display().to_string()];
    let with_ob = Server::start(with_ob);

    let (status, envelope) = with_ob
        .post(
            CREATE,
            json!({ "target_type": "OB", "name": "ob", "ob_credential_property": {
                "targets": [{ "ip": "127.0.0.1", "port": db.addr.port() }],
                "username": support::mariadb::USER,
                "passphrase": support::mariadb::PASSWORD } }),
        )
        .await;
    assert_eq!(status, 200, "{envelope}");
    let id = envelope["data"]["credential_id"].as_u64().unwrap();
    let detail = plain.validate_stored(id).await;
    assert_eq!(detail["reason"], "UNSUPPORTED", "{detail}");
    let detail = with_ob.validate_stored(id).await;
    assert_eq!(detail["connection_result"], "SUCCESS", "{detail}");

    // Both heartbeats are in within a few of them.
    let deadline = Instant::now() + Duration::from_secs(10);
    let view = loop {
        let (status, envelope) = plain.get("/api/v1/cluster").await;
        assert_eq!(status, 200, "{envelope}");
        let view = envelope["data"].clone();
        if view["servers"].as_array().unwrap().len() == 2 {
            break view;
        }
        assert!(Instant::now() < deadline, "{view}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(view["plugin_sets_differ"], true, "{view}");
    let servers = view["servers"].as_array().unwrap();
    assert!(
        servers.iter().any(|s| s["plugins_differ"] == true),
        "{view}"
    );
    assert!(
        servers
            .iter()
            .any(|s| s["plugins"]["verifiers"].to_string().contains("\"OB\"")),
        "{view}"
    );
}

/// obshell's key replacement sent to a server that lacks the cluster's
/// encryption policy answers at once: the key took effect, and the rewrap
/// is left to the servers that have the policy. It went round a loop of
/// rewrap threads and queries, none of which could move a row to the
/// cluster's target, until the request's time ran out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_replacement_on_a_server_without_the_cluster_s_policy_answers_at_once() {
    let db = MariaDb::start();
    let cluster = Cluster::start(&db, "lacking", 1, &[]);
    let lacking = cluster.servers[0].clone();
    let plugins = support::plugin_dir(&["leaky_policy", "instant_verifier"]);
    let mut having = options(&cluster.url, &cluster.kek, &[]);
    having.args = vec!["--plugin-dir".into(), plugins.path().display().to_string()];
    let having = Server::start(having);
    having.swap_policy("leaky").await;
    let (status, created) = having
        .post(
            CREATE,
            json!({ "target_type": "INSTANT", "name": "sealed-by-leaky",
                "instant_credential_property": { "targets": [{ "ip": "127.0.0.1" }],
                    "username": "u", "passphrase": "Leaky-sealed-3318" } }),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lacking
        .log_text()
        .contains("the cluster's encryption policy is not loaded here")
    {
        assert!(Instant::now() < deadline, "{}", lacking.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let key = base64::engine::general_purpose::STANDARD.encode([5u8; 32]);
    let started = Instant::now();
    let (status, envelope) = lacking
        .put(
            "/api/v1/security/credential/encrypt-secret-key",
            json!({ "aes_key": key }),
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered after {:?}",
        started.elapsed()
    );
    assert_eq!(status, 500, "{envelope}");
    let said = message(&envelope);
    assert!(
        said.contains("is current and seals new secrets")
            && said.contains("does not have the cluster's encryption policy"),
        "{said}"
    );
}

/// `openssl` run in `dir`; panics with its words on a failure.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate authority `name` (`name.pem`, `name.key`) in `dir`.
fn certificate_authority(dir: &std::path::Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// The database's certificate for 127.0.0.1 (`db.pem`, `db.key`), signed
/// by the authority `ca`.
fn database_certificate(dir: &std::path::Path, ca: &str) {
    std::fs::write(dir.join("db.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "db.key",
            "-out",
            "db.csr",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "db.csr",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "db.ext",
            "-out",
            "db.pem",
        ],
    );
}

/// A database that takes TLS connections only: a server that trusts its
/// certificate's authority writes (the blocking driver) and reads (GET
/// goes through the async one) over TLS; one that trusts another
/// authority, and one that would speak plaintext, do not start, and say
/// why without the database's password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_is_reached_over_tls_with_a_trusted_certificate_only() {
    let pki = tempfile::tempdir().unwrap();
    certificate_authority(pki.path(), "ca");
    certificate_authority(pki.path(), "rogue");
    database_certificate(pki.path(), "ca");
    let at = |file: &str| pki.path().join(file).display().to_string();
    let db = MariaDb::start_with(&[
        format!("--ssl-ca={}", at("ca.pem")),
        format!("--ssl-cert={}", at("db.pem")),
        format!("--ssl-key={}", at("db.key")),
        "--require-secure-transport=ON".into(),
    ]);
    let url = db.database("tls", "tls", DB_PASSWORD);
    let kek = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let trusting = |ca: &str| {
        let mut options = options(&url, &kek, &[]);
        options.config = Some(format!(
            "[store_tls]\nenabled = true\nca = \"{}\"\n",
            at(ca)
        ));
        options
    };

    let server = Server::start(trusting("ca.pem"));
    let fake = FakeSsh::start(&fake_ssh::loopback_ips(53_000, 1)).await;
    let (status, envelope) = server
        .post(CREATE, host_body("over-tls", fake.addrs[0]))
        .await;
    assert_eq!(status, 200, "{envelope}");
    let id = envelope["data"]["credential_id"].as_u64().unwrap();
    let (status, envelope) = server.get(&format!("{CREATE}/{id}")).await;
    assert_eq!(status, 200, "{envelope}");
    assert_eq!(envelope["data"]["name"], "over-tls");
    // The database's side of it: the handshakes it accepted were TLS
    // (root speaks over the socket, without).
    let accepted = db.sql("SHOW GLOBAL STATUS LIKE 'Ssl_finished_accepts'");
    let accepted: u64 = accepted.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(accepted > 0, "no TLS session was accepted");

    for (refused, why) in [
        (
            {
                let mut plain = options(&url, &kek, &[]);
                plain.config = None;
                plain
            },
            "Access denied",
        ),
        (trusting("rogue.pem"), "certificate"),
        (
            {
                let mut unchecked = trusting("ca.pem");
                let config = unchecked.config.take().unwrap();
                unchecked.config = Some(config + "skip_domain_validation = true\n");
                unchecked
            },
            "skip_domain_validation",
        ),
    ] {
        let (mut command, _config) = serve_command(&refused);
        let said = refused_at_start(&mut command, why);
        assert!(said.contains(why), "{said}");
        assert!(!said.contains(DB_PASSWORD), "{said}");
    }

    // The offline commands reach it the same way: over TLS to a CA they
    // are given, and not to one they are not.
    let migrate = |link: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_credhost"))
            .args(["store", "migrate", &url])
            .args(link)
            .env("CREDHOST_STORE_PASSWORD", DB_PASSWORD)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(!said.contains(DB_PASSWORD), "{said}");
        (out.status.success(), said)
    };
    let (ok, said) = migrate(&["--store-tls-ca", &at("ca.pem")]);
    assert!(ok && said.contains("schema version"), "{said}");
    let (ok, said) = migrate(&["--store-tls-ca", &at("rogue.pem")]);
    assert!(!ok && said.contains("certificate"), "{said}");
    let (ok, said) = migrate(&[]);
    assert!(!ok && said.contains("Access denied"), "{said}");
}

/// The rewrap's sweep over the shared store reads on from where it got to
/// (InnoDB keeps resealed rows' old index entries until it purges them, and
/// reading from the start stepped over all of them every batch), and still
/// hands out every row: each once, and again one written under an old key
/// behind the sweep, before it answers that none is left.
#[test]
fn the_rewrap_sweep_hands_out_every_row_and_one_written_behind_it() {
    use credhost::keys::{Kek, Keyring};
    use credhost::plugins::Target;
    use credhost::secret::Secret;
    use credhost::store::mysql::{RowMac, StoreOptions, StoreTls};
    use credhost::store::{MysqlStore, Record, SealedSecret, SecretChange, Store};

    let db = MariaDb::start();
    let url = db.database("sweep", "sweep", DB_PASSWORD);
    let tls = StoreTls::default();
    let store = Arc::new(
        MysqlStore::open(&StoreOptions {
            url: &url,
            password: Some(DB_PASSWORD),
            tls: &tls,
            max_connections: 4,
        })
        .unwrap(),
    );
    let kek = Kek::from_bytes(Secret::new(vec![3; 32])).unwrap();
    store.set_integrity_key(RowMac::new(kek.derive(credhost::server::ROW_MAC)));
    // Key 1, which every row below is sealed by.
    let _keys = Keyring::shared(store.clone(), kek).unwrap();
    let sealed = |policy: &str| SealedSecret {
        policy: policy.into(),
        policy_version: "0.1.0".into(),
        key_id: 1,
        ciphertext: vec![7; 40],
    };
    let records: Vec<Record> = (1..=9u64)
        .map(|id| Record {
            id,
            name: format!("row-{id}"),
            description: String::new(),
            target_type: "HOST".into(),
            public_field: "ssh_secret".into(),
            public: "{}".into(),
            targets: vec![Target {
                ip: format!("127.0.9.{id}").parse().unwrap(),
                port: 22,
            }],
            search_terms: Vec::new(),
            // Two groups to sweep: "old-a" and "old-b".
            secret: sealed(if id % 3 == 0 { "old-b" } else { "old-a" }),
            created_us: 1,
            updated_us: 1,
            version: 1,
            host_keys: Vec::new(),
        })
        .collect();
    store.import(&records).unwrap();

    let reseal = |record: &Record, to: &str| {
        let change = SecretChange {
            id: record.id,
            expected: record.secret.clone(),
            new: sealed(to),
        };
        assert_eq!(store.replace_secrets(&[change]).unwrap(), 1);
    };
    let mut handed = Vec::new();
    let mut written_behind = false;
    loop {
        let batch = store.not_sealed_by("new", 1, 2).unwrap();
        if batch.is_empty() {
            break;
        }
        assert!(batch.len() <= 2);
        for record in &batch {
            assert_ne!(record.secret.policy, "new");
            handed.push(record.id);
            reseal(record, "new");
        }
        // Once the sweep is past row 1, a server that has not heard of
        // the rotation writes row 1 under an old key again.
        if !written_behind && handed.len() >= 4 {
            written_behind = true;
            let row = store.get(1).unwrap().unwrap();
            reseal(&row, "old-a");
        }
        assert!(handed.len() < 30, "the sweep does not end: {handed:?}");
    }
    handed.sort_unstable();
    let mut expected: Vec<u64> = (1..=9).collect();
    expected.push(1);
    expected.sort_unstable();
    assert_eq!(handed, expected);
    let counts = store.sealing_counts().unwrap();
    assert_eq!(counts.len(), 1, "{counts:?}");
    assert_eq!((counts[0].policy.as_str(), counts[0].rows), ("new", 9));
}

/// The sweep of used headers goes by the database's clock, and keeps each
/// record a margin past its expiry: a sweeping server whose clock runs
/// ahead no longer forgets headers the other servers still accept.
#[test]
fn used_headers_are_swept_by_the_database_s_clock() {
    use credhost::store::mysql::{StoreOptions, StoreTls};
    use credhost::store::{Coordination, MysqlStore};

    let db = MariaDb::start();
    let url = db.database("replays", "replays", DB_PASSWORD);
    let tls = StoreTls::default();
    let store = MysqlStore::open(&StoreOptions {
        url: &url,
        password: Some(DB_PASSWORD),
        tls: &tls,
        max_connections: 2,
    })
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let live = [1u8; 32];
    let expired = [2u8; 32];
    assert!(store.first_use(&live, now + 120, now).unwrap());
    assert!(store.first_use(&expired, now - 60, now - 120).unwrap());
    // Within the margin, nothing goes; without one, only what expired.
    assert_eq!(store.forget_used(3600).unwrap(), 0);
    assert_eq!(store.forget_used(0).unwrap(), 1);
    assert!(
        !store.first_use(&live, now + 120, now).unwrap(),
        "still used"
    );
}

/// A server that has not heard yet that another retired the key it seals
/// with (its heartbeat is far off) has a write refused once (503, retry),
/// and reads the keyring again at once: the retry seals under the current
/// key and succeeds, instead of failing the same way until the heartbeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_under_a_key_retired_elsewhere_succeeds_on_its_retry() {
    let db = MariaDb::start();
    let url = db.database("retired", "retired", DB_PASSWORD);
    let kek = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let (a, b) = (
        Server::start(quiet(&url, &kek)),
        Server::start(quiet(&url, &kek)),
    );
    // Each has had its first heartbeat (its row is listed): the next is
    // ten minutes away, so B hears nothing of what A does below.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, envelope) = b.get("/api/v1/cluster").await;
        if envelope["data"]["servers"].as_array().map_or(0, Vec::len) == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{envelope}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fake = FakeSsh::start(&fake_ssh::loopback_ips(64_100, 2)).await;
    let (status, created) = a.post(CREATE, host_body("first", fake.addrs[0])).await;
    assert_eq!(status, 200, "{created}");
    // A rotates; its rewrap moves the row and retires key 1. (B may hold
    // the rewrap lease from its own start for a moment: A asks again.)
    let (status, envelope) = a.post("/api/v1/security/keys/rotate", json!({})).await;
    assert_eq!(status, 200, "{envelope}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let settled = support::server::rewrap_settled(&a).await;
        let retired = settled["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == 1 && k["retired"] == true);
        if retired {
            break;
        }
        assert!(Instant::now() < deadline, "{settled}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        a.post("/api/v1/security/encryption/rewrap", json!({}))
            .await;
    }

    let (status, refused) = b.post(CREATE, host_body("second", fake.addrs[1])).await;
    assert_eq!(status, 503, "{refused}");
    assert!(message(&refused).contains("retired meanwhile"), "{refused}");
    let (status, created) = b.post(CREATE, host_body("second", fake.addrs[1])).await;
    assert_eq!(status, 200, "{created}");
    let (_, envelope) = b.get("/api/v1/security/encryption").await;
    assert_eq!(envelope["data"]["current_key_id"], 2, "{envelope}");
}
