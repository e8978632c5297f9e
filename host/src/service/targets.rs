//! Where credentials may point: an optional allow-list of CIDRs, applied to
//! create, update and validate alike (obshell's validate can be aimed anywhere).

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

use super::{Error, MAX_TARGETS};
use crate::plugins::Target;

/// The IPv4 address an address under one of NAT64's standard prefixes
/// carries: the well-known `64:ff9b::/96`, and the local-use
/// `64:ff9b:1::/48`, where (as for any /48 prefix) the address is split
/// around the byte reserved at bits 64–71. A prefix a network chose for
/// itself cannot be told from any other IPv6 address.
pub fn nat64_ipv4(ip: IpAddr) -> Option<Ipv4Addr> {
    const WELL_KNOWN: [u16; 6] = [0x64, 0xff9b, 0, 0, 0, 0];
    const LOCAL_USE: [u16; 3] = [0x64, 0xff9b, 1];
    let IpAddr::V6(v6) = ip else {
        return None;
    };
    let o = v6.octets();
    if v6.segments()[..6] == WELL_KNOWN {
        Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
    } else if v6.segments()[..3] == LOCAL_USE {
        Some(Ipv4Addr::new(o[6], o[7], o[9], o[10]))
    } else {
        None
    }
}

#[derive(Debug, Clone, Default)]
pub struct TargetPolicy {
    /// Empty: every address is allowed.
    pub allow: Vec<IpNet>,
}

impl TargetPolicy {
    /// Whether the server may dial `target` (no list: any host). Never an
    /// address that names no one host: dialling `0.0.0.0` or `::` reaches
    /// this machine, whatever the list says of loopback.
    pub fn permits(&self, target: &Target) -> bool {
        // Stored targets may come from a copied store or another server:
        // `::ffff:0.0.0.0` is `0.0.0.0`.
        let ip = target.ip.to_canonical();
        // Through a NAT64 gateway, an address under its prefix reaches the
        // IPv4 host it carries: that host must be allowed too, or a list
        // allowing IPv6 widely would let any IPv4 host in.
        std::iter::once(ip)
            .chain(nat64_ipv4(ip).map(IpAddr::V4))
            .all(|ip| self.allows(ip))
    }

    fn allows(&self, ip: IpAddr) -> bool {
        let no_one_host =
            ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::V4(Ipv4Addr::BROADCAST);
        !no_one_host && (self.allow.is_empty() || self.allow.iter().any(|net| net.contains(&ip)))
    }

    pub fn check(&self, targets: &[Target]) -> Result<(), Error> {
        if targets.len() > MAX_TARGETS {
            return Err(Error::IllegalArgument(format!(
                "a credential has at most {MAX_TARGETS} targets, got {}",
                targets.len()
            )));
        }
        match targets.iter().find(|t| !self.permits(t)) {
            Some(outside) => Err(Error::TargetNotAllowed(outside.ip.to_string())),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(ip: &str) -> Target {
        Target {
            ip: ip.parse().unwrap(),
            port: 22,
        }
    }

    #[test]
    fn allows_everything_by_default_and_only_the_ranges_when_set() {
        assert!(
            TargetPolicy::default()
                .check(&[target("192.0.2.3")])
                .is_ok()
        );
        let policy = TargetPolicy {
            allow: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
        };
        assert!(policy.check(&[target("127.0.0.2"), target("::1")]).is_ok());
        let refused = policy
            .check(&[target("127.0.0.1"), target("192.0.2.1")])
            .unwrap_err();
        assert!(matches!(refused, Error::TargetNotAllowed(ip) if ip == "192.0.2.1"));
    }

    #[test]
    fn a_nat64_address_needs_the_ipv4_host_it_carries_allowed_too() {
        let policy = TargetPolicy {
            allow: vec!["10.0.0.0/8".parse().unwrap(), "::/0".parse().unwrap()],
        };
        assert!(policy.check(&[target("64:ff9b::a00:1")]).is_ok());
        assert!(policy.check(&[target("2001:db8::1")]).is_ok());
        let metadata = policy.check(&[target("64:ff9b::a9fe:a9fe")]).unwrap_err();
        assert!(matches!(metadata, Error::TargetNotAllowed(ip) if ip == "64:ff9b::a9fe:a9fe"));
        // The local-use prefix: 169.254.169.254 around the reserved byte.
        assert_eq!(
            nat64_ipv4("64:ff9b:1:a9fe:a9:fe00::".parse().unwrap()),
            Some(Ipv4Addr::new(169, 254, 169, 254))
        );
        assert!(policy.check(&[target("64:ff9b:1:a9fe:a9:fe00::")]).is_err());
        assert!(policy.check(&[target("64:ff9b:1:a00:1::")]).is_ok());
        // With no list, nothing but addresses of no one host is refused.
        assert!(
            TargetPolicy::default()
                .check(&[target("64:ff9b::a9fe:a9fe")])
                .is_ok()
        );
        assert!(
            TargetPolicy::default()
                .check(&[target("64:ff9b::")])
                .is_err()
        );
    }

    #[test]
    fn addresses_of_no_one_host_are_refused_even_by_a_list_that_covers_them() {
        let everywhere = TargetPolicy {
            allow: vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()],
        };
        for policy in [TargetPolicy::default(), everywhere] {
            for ip in [
                "0.0.0.0",
                "::",
                "224.0.0.1",
                "ff02::1",
                "255.255.255.255",
                "::ffff:0.0.0.0",
                "::ffff:255.255.255.255",
            ] {
                assert!(
                    matches!(policy.check(&[target(ip)]), Err(Error::TargetNotAllowed(_))),
                    "{ip}"
                );
            }
            assert!(policy.check(&[target("192.0.2.3"), target("::1")]).is_ok());
        }
    }

    #[test]
    fn caps_the_number_of_targets() {
        let many: Vec<Target> = (0..=MAX_TARGETS as u32)
            .map(|i| Target {
                ip: std::net::Ipv4Addr::from(i).into(),
                port: 22,
            })
            .collect();
        assert!(matches!(
            TargetPolicy::default().check(&many),
            Err(Error::IllegalArgument(_))
        ));
    }
}
