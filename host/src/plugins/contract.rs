//! Which contract a component was built against, read from the interface
//! it exports (`credhost:plugin/verification@0.2.0`, say).

use wasmtime::component::Component;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Verifier,
    Policy,
}

/// A contract version the host speaks (any patch release of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    V0_1,
    V0_2,
    V0_3,
}

impl Version {
    pub const SPOKEN: &str = "credhost:plugin 0.1, 0.2 and 0.3";

    pub fn package(self) -> &'static str {
        match self {
            Version::V0_1 => "credhost:plugin@0.1.0",
            Version::V0_2 => "credhost:plugin@0.2.0",
            Version::V0_3 => "credhost:plugin@0.3.0",
        }
    }

    fn of(major: u64, minor: u64) -> Option<Self> {
        match (major, minor) {
            (0, 1) => Some(Version::V0_1),
            (0, 2) => Some(Version::V0_2),
            (0, 3) => Some(Version::V0_3),
            _ => None,
        }
    }
}

/// `major.minor.patch` of an interface name's `@version`.
fn version_of(name: &str) -> Option<(u64, u64)> {
    let version = name.rsplit_once('@')?.1;
    let mut parts = version.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// What the component is, and against which version; or why it is refused.
pub fn detect(engine: &wasmtime::Engine, component: &Component) -> Result<(Kind, Version), String> {
    let ty = component.component_type();
    for (name, _) in ty.exports(engine) {
        let kind = if name.starts_with("credhost:plugin/verification@") {
            Kind::Verifier
        } else if name.starts_with("credhost:plugin/sealing@") {
            Kind::Policy
        } else {
            continue;
        };
        let (major, minor) = version_of(name)
            .ok_or_else(|| format!("exports {name}, whose version is unreadable"))?;
        return Version::of(major, minor).map(|v| (kind, v)).ok_or_else(|| {
            format!(
                "exports {name}: contract {major}.{minor} is not one this server speaks ({})",
                Version::SPOKEN
            )
        });
    }
    Err(format!(
        "exports neither credhost:plugin/verification nor credhost:plugin/sealing: not a credhost plugin ({} are spoken)",
        Version::SPOKEN
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_from_interface_names() {
        assert_eq!(
            version_of("credhost:plugin/verification@0.2.0"),
            Some((0, 2))
        );
        assert_eq!(version_of("credhost:plugin/sealing@0.1.7"), Some((0, 1)));
        assert_eq!(
            version_of("credhost:plugin/sealing@1.0.0-rc1"),
            Some((1, 0))
        );
        assert_eq!(version_of("credhost:plugin/sealing"), None);
        assert_eq!(Version::of(0, 4), None);
        assert_eq!(Version::of(0, 3), Some(Version::V0_3));
        assert_eq!(Version::of(0, 2), Some(Version::V0_2));
    }
}
