//! The real `credhost` binary, started on a loopback port with its own data
//! directory, and a small HTTP client for it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

pub struct Server {
    pub base: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    listen: String,
    open_files: Option<u64>,
    run_as: Option<u32>,
    netns: Option<String>,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

#[derive(Default, Clone)]
pub struct Options {
    pub args: Vec<String>,
    pub envs: Vec<(String, String)>,
    /// A configuration file's text, passed with `--config`.
    pub config: Option<String>,
    /// Where to listen instead of a free loopback port.
    pub listen: Option<String>,
    /// The soft limit of open files the server starts with.
    pub open_files: Option<u64>,
    /// Another user the server runs as (the test runs as root): its uid.
    /// The server's directory (its data directory's parent, and the
    /// settings file) is that user's.
    pub run_as: Option<u32>,
    /// A network namespace (see `netns.rs`) the server runs in.
    pub netns: Option<String>,
}

impl Server {
    pub fn start(mut options: Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        if let Some(text) = &options.config {
            let path = dir.path().join("credhost.toml");
            std::fs::write(&path, text).unwrap();
            // As the server asks of a settings file that may hold a password.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            if let Some(uid) = options.run_as {
                std::os::unix::fs::chown(&path, Some(uid), None).unwrap();
            }
            options.args.push("--config".into());
            options.args.push(path.display().to_string());
        }
        if let Some(uid) = options.run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), None).unwrap();
        }
        let mut server = Self {
            base: String::new(),
            data_dir: dir.path().join("data"),
            log: dir.path().join("credhost.log"),
            child: None,
            args: options.args,
            envs: options.envs,
            listen: options.listen.unwrap_or_else(|| "127.0.0.1:0".into()),
            open_files: options.open_files,
            run_as: options.run_as,
            netns: options.netns,
            _dir: dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let binary = std::fs::File::open(env!("CARGO_BIN_EXE_credhost")).unwrap();
        let mut command = match (self.run_as, &self.netns) {
            (Some(uid), _) => as_user(&binary, uid),
            // `ip netns exec` becomes the server: its pid is the server's.
            (None, Some(netns)) => {
                let mut command = Command::new("ip");
                command
                    .args(["netns", "exec", netns])
                    .arg(env!("CARGO_BIN_EXE_credhost"));
                command
            }
            (None, None) => Command::new(env!("CARGO_BIN_EXE_credhost")),
        };
        if let Some(soft) = self.open_files {
            use std::os::unix::process::CommandExt;
            // SAFETY: only async-signal-safe syscalls between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    let mut limit = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
                    limit.rlim_cur = soft.min(limit.rlim_max);
                    libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
                    Ok(())
                });
            }
        }
        let mut child = command
            .arg("serve")
            .args(["--listen", &self.listen, "--data-dir"])
            .arg(&self.data_dir)
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("CREDHOST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("credhost listening on ")
            .unwrap_or_else(|| panic!("credhost did not start: {line:?}\n{}", self.log_text()));
        self.base = addr.to_string();
        self.child = Some(child);
    }

    /// The server process's id.
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server runs").id()
    }

    /// Stops the server (`kill -9`), keeping its data directory.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// `kill -9` through a shared reference (the process is reaped on drop).
    pub fn kill_now(&self) {
        if let Some(child) = &self.child {
            // SAFETY: a plain syscall on a child this server started.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGKILL);
            }
        }
    }

    /// Starts it again on the same data directory.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// A stop, then a start with `args` in place of the flags it had.
    #[allow(dead_code)]
    pub fn restart_with_args(&mut self, args: &[&str]) {
        self.stop();
        self.args = args.iter().map(|a| a.to_string()).collect();
        self.spawn();
    }

    /// `kill -9`, then a start on the same data directory.
    pub fn crash_and_restart(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        self.spawn();
    }

    /// Stops it as an operator does (SIGTERM, waiting for it to exit),
    /// then starts it on the same data directory.
    pub fn terminate_and_restart(&mut self) {
        let mut child = self.child.take().unwrap();
        // SAFETY: a plain syscall on a child this server started.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let status = child.wait().unwrap();
        assert!(status.success(), "stopped with {status}");
        self.spawn();
    }

    /// Sends SIGHUP (reload the plugin directory).
    pub fn hangup(&self) {
        let pid = self.child.as_ref().unwrap().id();
        let status = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let envelope: Value = response.json().await.unwrap();
        assert_eq!(
            envelope["status"], status,
            "status field and HTTP status differ: {envelope}"
        );
        (status, envelope)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// Validates stored credential `id`; its first target's detail.
    pub async fn validate_stored(&self, id: u64) -> Value {
        let (status, envelope) = self
            .post(
                "/api/v1/security/credentials/validate",
                serde_json::json!({ "credential_id_list": [id] }),
            )
            .await;
        assert_eq!(status, 200, "{envelope}");
        envelope["data"]["contents"][0]["details"][0].clone()
    }

    /// Every one of `ids` opens and proves itself: batch validation reports
    /// no failure.
    pub async fn every_row_opens(&self, ids: &[u64]) {
        for chunk in ids.chunks(500) {
            let (status, envelope) = self
                .post(
                    "/api/v1/security/credentials/validate",
                    serde_json::json!({ "credential_id_list": chunk }),
                )
                .await;
            assert_eq!(status, 200, "{envelope}");
            for result in envelope["data"]["contents"].as_array().unwrap() {
                assert_eq!(result["failed_count"], 0, "{result}");
            }
        }
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, body).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    /// Makes `policy` the active encryption policy; the answer's data.
    #[allow(dead_code)]
    pub async fn swap_policy(&self, policy: &str) -> Value {
        let (status, envelope) = self
            .put(
                "/api/v1/security/encryption/policy",
                serde_json::json!({ "policy": policy }),
            )
            .await;
        assert_eq!(status, 200, "{envelope}");
        envelope["data"].clone()
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.http
    }

    /// A request with `Authorization: Bearer token`.
    pub async fn call_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        // Everything answers the envelope but /metrics, which is text.
        let Ok(envelope) = serde_json::from_str::<Value>(&text) else {
            return (status, Value::String(text));
        };
        assert_eq!(envelope["status"], status, "{envelope}");
        (status, envelope)
    }

    /// A token made with the CLI on this server's data directory, as an
    /// operator makes the first one.
    pub fn token(&self, name: &str, scope: &str) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_credhost"))
            .args([
                "token",
                "create",
                "--name",
                name,
                "--scope",
                scope,
                "--data-dir",
            ])
            .arg(&self.data_dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "token create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The error code of an envelope, asserting the request failed.
pub fn err_code(envelope: &Value) -> &str {
    assert_eq!(envelope["successful"], false, "{envelope}");
    envelope["error"]["errCode"].as_str().unwrap()
}

pub fn message(envelope: &Value) -> &str {
    envelope["error"]["message"].as_str().unwrap()
}

/// Creates one HOST credential per fake SSH address, `concurrency` at a time;
/// returns the ids in address order.
pub async fn populate(
    server: &Server,
    addrs: &[std::net::SocketAddr],
    prefix: &str,
    concurrency: usize,
) -> Vec<u64> {
    use futures::StreamExt;
    let bodies: Vec<Value> = addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            serde_json::json!({
                "target_type": "HOST",
                "name": format!("{prefix}-{i:05}"),
                "ssh_credential_property": {
                    "targets": [{ "ip": addr.ip().to_string(), "port": addr.port() }],
                    "username": super::fake_ssh::USER, "type": "PASSWORD",
                    "passphrase": super::fake_ssh::PASSWORD,
                }
            })
        })
        .collect();
    futures::stream::iter(bodies)
        .map(|b| async move {
            let (status, envelope) = server.post("/api/v1/security/credential", b).await;
            assert_eq!(status, 200, "{envelope}");
            envelope["data"]["credential_id"].as_u64().unwrap()
        })
        .buffered(concurrency)
        .collect()
        .await
}

/// Waits until no rewrap runs and every row is under the active policy and
/// the current key, or a run failed; returns the encryption status then.
pub async fn rewrap_settled(server: &Server) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (status, envelope) = server.get("/api/v1/security/encryption").await;
        assert_eq!(status, 200, "{envelope}");
        let data = &envelope["data"];
        // Not running is not enough: a status read just before a run
        // begins says so too. Settled is every row under the active policy
        // and the current key, or a run that failed.
        let behind = |list: &str, current: &dyn Fn(&Value) -> bool| {
            data[list]
                .as_array()
                .is_some_and(|uses| uses.iter().any(|u| !current(u) && u["rows"] != 0))
        };
        let converged = !behind("policies", &|p| p["active"] == true)
            && !behind("keys", &|k| k["id"] == data["current_key_id"]);
        let state = &data["rewrap"]["state"];
        if state != "running" && (converged || state == "failed") {
            return data.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rewrap did not finish: {envelope}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The binary `binary` is open as, to be run as user `uid` (in that user's
/// own group, without the test's groups). Run by its descriptor: the
/// directories on the way to the build's binary may be closed to that user,
/// and the kernel resolves the descriptor before the exec closes it.
pub fn as_user(binary: &std::fs::File, uid: u32) -> Command {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    // SAFETY: getpwuid returns a pointer to static storage or null; it is
    // read at once, on this thread.
    let gid = unsafe {
        let entry = libc::getpwuid(uid);
        assert!(!entry.is_null(), "no user {uid}");
        (*entry).pw_gid
    };
    let mut command = Command::new(format!("/proc/self/fd/{}", binary.as_raw_fd()));
    // As root, std drops the supplementary groups when it sets the uid.
    command.uid(uid).gid(gid);
    command
}

/// What the server printed when it refused to start; a server that
/// starts instead is stopped and the test fails.
pub fn refused_at_start(command: &mut Command, what: &str) -> String {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Long enough for a start that first reaches a database.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("{what}: the server started");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{what}");
    stderr
}
