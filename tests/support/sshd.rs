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
    _dir: tempfile::TempDir,
}

impl Sshd {
    pub fn start() -> Self {
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
        let key = dir.path().join("host_ed25519");
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(status.success(), "ssh-keygen failed");
        let port = free_port();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {key}\nPidFile {pid}\n\
                 PasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 PubkeyAuthentication no\nPermitRootLogin no\nStrictModes no\n\
                 AllowUsers {USER}\nMaxStartups 200:30:400\nMaxSessions 200\nLogLevel ERROR\n",
                key = key.display(),
                pid = dir.path().join("sshd.pid").display(),
            ),
        )
        .unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not start listening on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            addr,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
