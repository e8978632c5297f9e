//! The CLI in a real terminal (tmux): the passphrase prompt does not echo
//! what is typed, and `validate --all` draws a progress bar that moves
//! before the summary replaces it.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::fake_ssh::{self, FakeSsh};
use support::server::{Options, Server, populate};
use support::sshd::{self, Sshd};

struct Tmux {
    session: String,
}

impl Tmux {
    /// `command` in a detached 200×50 terminal, with `env` set.
    fn start(command: &str, env: &[(&str, &str)]) -> Self {
        let session = format!("credhost-{:08x}", rand::random::<u32>());
        let mut tmux = Command::new("tmux");
        tmux.args(["new-session", "-d", "-s", &session, "-x", "200", "-y", "50"]);
        for (key, value) in env {
            tmux.args(["-e", &format!("{key}={value}")]);
        }
        // The pane stays after the command ends, so its last screen can be read.
        let status = tmux
            .arg(format!("{command}; echo EXIT=$?; sleep 600"))
            .status()
            .expect("tmux is installed by tests/run");
        assert!(status.success());
        Self { session }
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.session])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls the screen without blocking the runtime, whose tasks (the
    /// in-process SSH servers) must keep running.
    async fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(Instant::now() < deadline, "never saw {text:?}:\n{screen}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn send(&self, keys: &str) {
        let status = Command::new("tmux")
            .args(["send-keys", "-t", &self.session, "-l", keys])
            .status()
            .unwrap();
        assert!(status.success());
        let status = Command::new("tmux")
            .args(["send-keys", "-t", &self.session, "Enter"])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.session])
            .status();
    }
}

fn env_for<'a>(server: &'a Server, token: &'a str, home: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("CREDHOST_URL", server.base.as_str()),
        ("CREDHOST_TOKEN", token),
        ("HOME", home),
        ("XDG_CONFIG_HOME", home),
    ]
}

#[tokio::test]
async fn the_passphrase_prompt_does_not_echo() {
    let sshd = Sshd::start();
    let server = Server::start(Options::default());
    let token = server.token("terminal", "write");
    let home = tempfile::tempdir().unwrap();
    let home = home.path().display().to_string();
    let command = format!(
        "{} credential create --name web --target 127.0.0.1:{} --username {}",
        env!("CARGO_BIN_EXE_credhost"),
        sshd.addr.port(),
        sshd::USER
    );
    let tmux = Tmux::start(&command, &env_for(&server, &token, &home));
    tmux.wait_for("Passphrase:").await;
    tmux.send(sshd::PASSWORD);
    let screen = tmux.wait_for("EXIT=").await;
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(screen.contains("web"), "{screen}");
    assert!(
        !screen.contains(sshd::PASSWORD),
        "the passphrase was echoed:\n{screen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_all_shows_its_progress() {
    // Hosts that take a while to answer, so the bar is seen moving.
    let fake = FakeSsh::start_with_latency(
        &fake_ssh::loopback_ips(54_000, 300),
        Duration::from_millis(300),
    )
    .await;
    let server = Server::start(Options::default());
    populate(&server, &fake.addrs, "slow", 64).await;
    let token = server.token("terminal", "validate");
    let home = tempfile::tempdir().unwrap();
    let home = home.path().display().to_string();
    let command = format!(
        "{} credential validate --all",
        env!("CARGO_BIN_EXE_credhost")
    );
    let tmux = Tmux::start(&command, &env_for(&server, &token, &home));
    // Part-way: the bar with a count below the total.
    let deadline = Instant::now() + Duration::from_secs(120);
    let partial = loop {
        let screen = tmux.screen();
        if let Some(line) = screen.lines().find(|l| l.contains("validating [")) {
            let count = line
                .split("] ")
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .and_then(|n| n.trim().parse::<u32>().ok());
            if count.is_some_and(|n| n > 0 && n < 300) {
                break line.to_string();
            }
        }
        assert!(Instant::now() < deadline, "no bar part-way:\n{screen}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(partial.contains("/300 credentials"), "{partial}");
    let screen = tmux.wait_for("EXIT=").await;
    assert!(
        screen.contains("300 credentials validated: 300 passed, 0 failed"),
        "{screen}"
    );
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(
        !screen.contains("validating ["),
        "the bar is cleared:\n{screen}"
    );
}
