//! A credhost verifier for target type `__TARGET_TYPE__`. It proves a
//! credential by opening a TCP connection to each target; replace `verify`
//! with your protocol's login (see examples/ob-verifier for MySQL).

wit_bindgen::generate!({ world: "verifier", path: "wit" });

use std::net::{IpAddr, SocketAddr, TcpStream};

use exports::credhost::plugin::verification::{
    Descriptor, Detail, Guest, Normalized, Purpose, Reason, Refusal, Secret, Target,
};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Property {
    targets: Vec<Endpoint>,
    username: String,
    #[serde(default)]
    passphrase: String,
}

#[derive(Clone, Serialize, Deserialize)]
struct Endpoint {
    ip: String,
    port: u16,
}

/// What responses show, and what `verify` gets back: never the secret.
#[derive(Serialize, Deserialize)]
struct Public {
    targets: Vec<Endpoint>,
    username: String,
}

struct Plugin;

fn refuse(code: &str, message: String) -> Refusal {
    Refusal { code: code.into(), message }
}

impl Guest for Plugin {
    fn describe() -> Descriptor {
        Descriptor {
            target_type: "__TARGET_TYPE__".into(),
            property_field: "__FIELD___credential_property".into(),
            public_field: "__FIELD___secret".into(),
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    fn normalize(property: String, purpose: Purpose) -> Result<Normalized, Refusal> {
        let p: Property = serde_json::from_str(&property)
            .map_err(|e| refuse("Common.BindJsonFailed", format!("Bind JSON failed: {e}")))?;
        if p.targets.is_empty() {
            return Err(refuse("Common.IllegalArgument", "Illegal argument: targets list cannot be empty".into()));
        }
        let mut targets = Vec::new();
        for t in &p.targets {
            let ip: IpAddr = t
                .ip
                .parse()
                .map_err(|_| refuse("Common.InvalidIp", format!("'{}' is not a valid IP address", t.ip)))?;
            targets.push(Endpoint { ip: ip.to_canonical().to_string(), port: t.port });
        }
        let public = Public { targets: targets.clone(), username: p.username.clone() };
        Ok(Normalized {
            public: serde_json::to_string(&public).unwrap(),
            secret: match purpose {
                Purpose::Update if p.passphrase.is_empty() => Secret::Keep,
                _ => Secret::Replace(p.passphrase.into_bytes()),
            },
            targets: targets.iter().map(|t| Target { ip: t.ip.clone(), port: t.port }).collect(),
            search_terms: vec![p.username],
        })
    }

    fn verify(public: String, _secret: Vec<u8>) -> Vec<Detail> {
        let public: Public = serde_json::from_str(&public).unwrap_or(Public { targets: Vec::new(), username: String::new() });
        public
            .targets
            .into_iter()
            .map(|t| {
                let target = Target { ip: t.ip.clone(), port: t.port };
                let addr = t.ip.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, t.port));
                match addr.map(TcpStream::connect) {
                    Ok(Ok(_)) => Detail { target, connection_result: "SUCCESS".into(), reason: Reason::Ok, message: String::new() },
                    Ok(Err(e)) => Detail {
                        target,
                        connection_result: "CONNECT_FAILED".into(),
                        reason: if e.kind() == std::io::ErrorKind::ConnectionRefused { Reason::Refused } else { Reason::Unreachable },
                        message: e.to_string(),
                    },
                    Err(_) => Detail { target, connection_result: "CONNECT_FAILED".into(), reason: Reason::Other, message: "not an IP".into() },
                }
            })
            .collect()
    }
}

export!(Plugin);
