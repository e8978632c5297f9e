//! Endpoints as the host indexes them: one canonical spelling per address
//! (`::ffff:192.0.2.1` is `192.0.2.1`, `FE80::1` is `fe80::1`), a default
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
    let ip = match ip {
        // The IPv4 grammar has one spelling per address (four decimal
        // octets, no leading zeros), so what parsed is canonical already,
        // and formatting it again would cost more than the rest of the call.
        IpAddr::V4(_) => raw.ip.clone(),
        IpAddr::V6(v6) => v6.to_canonical().to_string(),
    };
    Ok(Target { ip, port })
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

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    /// What the IPv4 fast path relies on: every text the parser accepts is
    /// the address's one spelling. Checked on near-misses of every kind.
    #[test]
    fn every_ipv4_text_that_parses_is_canonical() {
        let alphabet = b"0123456789.";
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut accepted = 0;
        for _ in 0..200_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = 7 + (seed % 10) as usize;
            let text: String = (0..len)
                .map(|i| {
                    let pick = (seed >> (i * 4 % 60)) as usize ^ i;
                    alphabet[pick % alphabet.len()] as char
                })
                .collect();
            if let Ok(ip) = text.parse::<Ipv4Addr>() {
                accepted += 1;
                assert_eq!(ip.to_string(), text);
            }
        }
        assert!(accepted > 100, "the generator found {accepted} addresses");
        for text in [
            "010.0.0.1",
            "1.2.3.04",
            "1.2.3",
            "1.2.3.4.5",
            " 1.2.3.4",
            "1.2.3.256",
        ] {
            assert!(text.parse::<Ipv4Addr>().is_err(), "{text}");
        }
    }

    #[test]
    fn ipv4_mapped_and_upper_case_ipv6_are_spelt_canonically() {
        let raw = |ip: &str| RawTarget {
            ip: ip.into(),
            port: 0,
        };
        assert_eq!(
            endpoint(&raw("::ffff:127.0.0.2"), 22, "SSH port")
                .unwrap()
                .ip,
            "127.0.0.2"
        );
        assert_eq!(
            endpoint(&raw("FE80::1"), 22, "SSH port").unwrap().ip,
            "fe80::1"
        );
        assert_eq!(
            endpoint(&raw("127.0.0.1"), 22, "SSH port").unwrap().ip,
            "127.0.0.1"
        );
    }
}
