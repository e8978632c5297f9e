//! Where credentials may point: an optional allow-list of CIDRs, applied to
//! create, update and validate alike (obshell's validate can be aimed anywhere).

use ipnet::IpNet;

use super::{Error, MAX_TARGETS};
use crate::plugins::Target;

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
        let no_one_host = ip.is_unspecified()
            || ip.is_multicast()
            || ip == std::net::IpAddr::V4(std::net::Ipv4Addr::BROADCAST);
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
