//! A network namespace of the test's own, joined to this one by a veth
//! pair on 198.18.0.0/15 (the range set aside for benchmarking networks):
//! a client in it reaches the server from an address that is not loopback,
//! over a link that exists only on this machine.

use std::process::Command;

pub struct Netns {
    pub name: String,
    /// This side of the link, where a server can listen.
    pub host_ip: String,
    /// The namespace's side, where the client is.
    pub ns_ip: String,
    host_link: String,
}

fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .status()
        .expect("ip (iproute2) is installed by tests/run");
    assert!(status.success(), "ip {} failed", args.join(" "));
}

impl Netns {
    pub fn create() -> Self {
        let tag: u16 = rand::random();
        let name = format!("credhost-{tag:04x}");
        let (host_link, ns_link) = (format!("chv{tag:04x}h"), format!("chv{tag:04x}n"));
        let subnet = (tag % 250) as u8 + 1;
        let (host_ip, ns_ip) = (format!("198.18.{subnet}.1"), format!("198.18.{subnet}.2"));
        ip(&["netns", "add", &name]);
        ip(&[
            "link", "add", &host_link, "type", "veth", "peer", "name", &ns_link,
        ]);
        ip(&["link", "set", &ns_link, "netns", &name]);
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_link]);
        ip(&["link", "set", &host_link, "up"]);
        ip(&[
            "-n",
            &name,
            "addr",
            "add",
            &format!("{ns_ip}/30"),
            "dev",
            &ns_link,
        ]);
        ip(&["-n", &name, "link", "set", &ns_link, "up"]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        Self {
            name,
            host_ip,
            ns_ip,
            host_link,
        }
    }

    /// `program` run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_link])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
