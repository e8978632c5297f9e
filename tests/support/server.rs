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
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

#[derive(Default, Clone)]
pub struct Options {
    pub args: Vec<String>,
    pub envs: Vec<(String, String)>,
}

impl Server {
    pub fn start(options: Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Self {
            base: String::new(),
            data_dir: dir.path().join("data"),
            log: dir.path().join("credhost.log"),
            child: None,
            args: options.args,
            envs: options.envs,
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
        let mut child = Command::new(env!("CARGO_BIN_EXE_credhost"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
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

    /// `kill -9`, then a start on the same data directory.
    pub fn crash_and_restart(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        self.spawn();
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

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, body).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.http
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
