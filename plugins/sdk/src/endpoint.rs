//! Endpoints as the host indexes them: one canonical spelling per address
//! (`::ffff:10.0.0.1` is `10.0.0.1`, `FE80::1` is `fe80::1`), a default
//! port, and obshell's rules and messages.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::IpAddr;

use crate::{RawTarget, Refusal, Target};

/// One target: a valid IP, and a port in 1..=65535 (0, absent, is
/// `default_port`). `port_label` names the port in the refusal (`SSH port`).
pub fn endpoint(raw: &RawTarget, default_port: u16, port_label: &str) -> Result<Target, Refusal> {
    let ip: IpAddr = raw.ip.parse().map_err(|_| Refusal::invalid_ip(&raw.ip))?;
    let port = if raw.port == 0 {
        i64::from(default_port)
    } else {
        raw.port
    };
    let port = u16::try_from(port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| Refusal::invalid_port(port_label, port))?;
    Ok(Target {
        ip: ip.to_canonical().to_string(),
        port,
    })
}

/// Every target, in order; an empty list is refused as obshell refuses it.
pub fn endpoints(
    raw: &[RawTarget],
    default_port: u16,
    port_label: &str,
) -> Result<Vec<Target>, Refusal> {
    if raw.is_empty() {
        return Err(Refusal::illegal("targets list cannot be empty"));
    }
    raw.iter()
        .map(|t| endpoint(t, default_port, port_label))
        .collect()
}

/// `ip:port`, or `[ip]:port` for IPv6.
pub fn show(target: &Target) -> String {
    if target.ip.contains(':') {
        format!("[{}]:{}", target.ip, target.port)
    } else {
        format!("{}:{}", target.ip, target.port)
    }
}
