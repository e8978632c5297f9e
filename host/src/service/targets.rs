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
    /// Whether the server may dial `target` (no list: anywhere).
    pub fn permits(&self, target: &Target) -> bool {
        self.allow.is_empty() || self.allow.iter().any(|net| net.contains(&target.ip))
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
