//! A real OpenSSH server on a loopback port, with a throwaway host key and
//! password login for the test account that `tests/run` creates.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The account `tests/run` creates for these tests.
pub const USER: &str = "credhost-test";
pub const PASSWORD: &str = "Ch-test-pw-7f3a9";

const SSHD: &str = "/usr/sbin/sshd";

pub struct Sshd {
    pub addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
    /// The host key's type, as `ssh-keygen -t` names it.
    key_kind: &'static str,
}

impl Sshd {
    /// The host key's public line (`ssh-ed25519 AAAA… comment`).
    pub fn host_key_line(&self) -> String {
        std::fs::read_to_string(self.public_key()).unwrap()
    }

    /// The host key's fingerprint as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(self.public_key())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    }

    fn public_key(&self) -> std::path::PathBuf {
        self.dir.path().join(format!("host_{}.pub", self.key_kind))
    }

    /// What sshd logged (LogLevel VERBOSE): every password attempt shows.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Stops it, gives it a new host key, and starts it on the same port:
    /// what a host replaced behind the same address looks like.
    pub fn replace_host_key(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let key = self.dir.path().join(format!("host_{}", self.key_kind));
        std::fs::remove_file(&key).unwrap();
        std::fs::remove_file(key.with_extension("pub")).unwrap();
        generate_key(self.dir.path(), self.key_kind);
        self.child = spawn(self.dir.path(), self.addr);
    }

    pub fn start() -> Self {
        Self::start_on("127.0.0.1")
    }

    /// On another loopback address (a credential's hosts are unique per ip).
    pub fn start_on(ip: &str) -> Self {
        Self::start_with(ip, &[], HostKey::ED25519)
    }

    /// With an RSA host key, offered only under `algorithms` (sshd's
    /// `HostKeyAlgorithms`: `ssh-rsa`, `rsa-sha2-256`, …).
    pub fn start_with_rsa_host_key(algorithms: &'static str) -> Self {
        Self::start_with(
            "127.0.0.1",
            &[],
            HostKey {
                kind: "rsa",
                algorithms: Some(algorithms),
            },
        )
    }

    /// Also accepting key logins for the test account with these public keys
    /// (`authorized_keys` lines).
    pub fn start_with_keys(authorized: &[String]) -> Self {
        Self::start_with("127.0.0.1", authorized, HostKey::ED25519)
    }

    /// One server listening on the same port of several loopback addresses
    /// (at most 16: sshd's own limit on listening sockets).
    pub fn start_on_many(ips: &[String]) -> Self {
        assert!(ips.len() <= 16, "sshd listens on at most 16 addresses");
        Self::start_with(&ips.join(" "), &[], HostKey::ED25519)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `ip` may be several addresses, separated by spaces.
    fn start_with(ip: &str, authorized: &[String], host_key: HostKey) -> Self {
        assert!(
            std::path::Path::new(SSHD).exists(),
            "{SSHD} is missing: run tests/run, which installs openssh-server"
        );
        let account = Command::new("id").arg(USER).output().unwrap();
        assert!(
            account.status.success(),
            "the test account {USER} is missing: run tests/run, which creates it"
        );
        std::fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let key = generate_key(dir.path(), host_key.kind);
        let first = ip.split(' ').next().unwrap();
        let port = free_port(first);
        let listen: String = ip
            .split(' ')
            .map(|ip| format!("ListenAddress {ip}\n"))
            .collect();
        let config = dir.path().join("sshd_config");
        let keys_file = dir.path().join("authorized_keys");
        std::fs::write(&keys_file, authorized.join("\n") + "\n").unwrap();
        let pubkey = if authorized.is_empty() {
            "PubkeyAuthentication no\n".to_string()
        } else {
            format!(
                "PubkeyAuthentication yes\nAuthorizedKeysFile {}\n",
                keys_file.display()
            )
        };
        let algorithms = host_key
            .algorithms
            .map(|a| format!("HostKeyAlgorithms {a}\n"))
            .unwrap_or_default();
        std::fs::write(
            &config,
            format!(
                "Port {port}\n{listen}HostKey {key}\n{algorithms}PidFile {pid}\n\
                 PasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 {pubkey}PermitRootLogin no\nStrictModes no\n\
                 AllowUsers {USER}\nMaxStartups 200:30:400\nMaxSessions 200\nLogLevel VERBOSE\n",
                key = key.display(),
                pid = dir.path().join("sshd.pid").display(),
            ),
        )
        .unwrap();
        let addr: SocketAddr = format!("{first}:{port}").parse().unwrap();
        let child = spawn(dir.path(), addr);
        Self {
            addr,
            child,
            dir,
            key_kind: host_key.kind,
        }
    }
}

/// The server's host key: its type, and the signature algorithms it is
/// offered under (sshd's default when `None`).
struct HostKey {
    kind: &'static str,
    algorithms: Option<&'static str>,
}

impl HostKey {
    const ED25519: Self = Self {
        kind: "ed25519",
        algorithms: None,
    };
}

fn generate_key(dir: &std::path::Path, kind: &str) -> std::path::PathBuf {
    let key = dir.join(format!("host_{kind}"));
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(status.success(), "ssh-keygen failed");
    key
}

fn spawn(dir: &std::path::Path, addr: SocketAddr) -> Child {
    let child = Command::new(SSHD)
        .args(["-D", "-E"])
        .arg(dir.join("sshd.log"))
        .arg("-f")
        .arg(dir.join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "sshd did not start listening on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A client key made with ssh-keygen: its private text (OpenSSH format, or
/// PEM with `pem`), its `authorized_keys` line and its fingerprint.
pub struct ClientKey {
    pub private: String,
    pub public_line: String,
    pub fingerprint: String,
}

impl ClientKey {
    /// `kind` is `ed25519`, `ecdsa` or `rsa`; `passphrase` encrypts it.
    pub fn generate(kind: &str, passphrase: &str, pem: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let mut keygen = Command::new("ssh-keygen");
        keygen.args([
            "-q",
            "-t",
            kind,
            "-N",
            passphrase,
            "-C",
            "credhost-test",
            "-f",
        ]);
        keygen.arg(&path);
        if pem {
            keygen.args(["-m", "PEM"]);
        }
        assert!(keygen.status().unwrap().success(), "ssh-keygen -t {kind}");
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(path.with_extension("pub"))
            .output()
            .unwrap();
        Self {
            private: std::fs::read_to_string(&path).unwrap(),
            public_line: std::fs::read_to_string(path.with_extension("pub"))
                .unwrap()
                .trim()
                .to_string(),
            fingerprint: String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .nth(1)
                .unwrap()
                .to_string(),
        }
    }
}
