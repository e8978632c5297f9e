//! A real MariaDB server (Debian's `mariadb-server`) on a loopback port, with
//! its own data directory and a user for the OB verifier to log in as.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "obtest";
pub const PASSWORD: &str = "Ob-test-pw-4471";

pub struct MariaDb {
    pub addr: SocketAddr,
    child: Child,
    /// Server options beyond the defaults, kept for `start_again`.
    options: Vec<String>,
    socket: std::path::PathBuf,
    dir: tempfile::TempDir,
}

fn require(path: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: run tests/run, which installs mariadb-server"
    );
}

impl MariaDb {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Started with further server options (`--ssl-cert=…`).
    pub fn start_with(options: &[String]) -> Self {
        require("/usr/sbin/mariadbd");
        require("/usr/bin/mariadb-install-db");
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let socket = dir.path().join("mysql.sock");
        // Temporary tables in a directory of this server's own: in the
        // shared /tmp, a bootstrap has been seen to crash on a temporary
        // file that was gone.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        // Twice more on a failure: under a loaded machine its bootstrap has
        // been seen to fail once in a while, and the reason is printed.
        let install = || {
            let _ = std::fs::remove_dir_all(&data);
            Command::new("mariadb-install-db")
                .args([
                    "--no-defaults",
                    "--user=root",
                    "--auth-root-authentication-method=socket",
                    "--skip-test-db",
                ])
                .arg(format!("--tmpdir={}", tmp.display()))
                .arg(format!("--datadir={}", data.display()))
                .output()
                .unwrap()
        };
        let mut out = install();
        for _ in 0..2 {
            if out.status.success() {
                break;
            }
            eprintln!(
                "mariadb-install-db failed, trying again: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            out = install();
        }
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let child = spawn(dir.path(), addr, options);
        let sql = format!(
            "CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'; GRANT USAGE ON *.* TO '{USER}'@'%';"
        );
        let status = Command::new("mariadb")
            .args(["--no-defaults", "-uroot"])
            .arg(format!("--socket={}", socket.display()))
            .args(["-e", &sql])
            .status()
            .unwrap();
        assert!(status.success(), "creating the test user failed");
        Self {
            addr,
            child,
            options: options.to_vec(),
            socket,
            dir,
        }
    }

    /// Runs SQL as root over the server's own socket.
    pub fn sql(&self, sql: &str) -> String {
        let out = Command::new("mariadb")
            .args(["--no-defaults", "-uroot", "-N", "-B"])
            .arg(format!("--socket={}", self.socket.display()))
            .args(["-e", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A database and a user for credhost, with a password; the URL
    /// (without the password).
    pub fn database(&self, name: &str, user: &str, password: &str) -> String {
        self.sql(&format!(
            "CREATE DATABASE {name}; CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'; \
             GRANT ALL ON {name}.* TO '{user}'@'%';"
        ));
        format!("mysql://{user}@{}/{name}", self.addr)
    }

    /// The server's process id (to pin it to a core, in the benchmark).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`: the database is gone until `start_again`.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same data directory and port.
    pub fn start_again(&mut self) {
        self.child = spawn(self.dir.path(), self.addr, &self.options);
    }
}

fn spawn(dir: &Path, addr: SocketAddr, options: &[String]) -> Child {
    let data = dir.join("data");
    let socket = dir.join("mysql.sock");
    let port = addr.port();
    let child = Command::new("/usr/sbin/mariadbd")
        .args([
            "--no-defaults",
            "--user=root",
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            // Room for the benchmarks' 100,000 rows and their indexes, as
            // an operator would size it; memory is taken as it is touched.
            "--innodb-buffer-pool-size=512M",
        ])
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", socket.display()))
        .arg(format!("--port={port}"))
        .arg(format!("--pid-file={}", dir.join("mariadb.pid").display()))
        .arg(format!("--tmpdir={}", dir.join("tmp").display()))
        .arg(format!("--log-error={}", dir.join("error.log").display()))
        .args(options)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "mariadbd did not start listening on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
