//! A credhost verifier for target type `OB`: OceanBase, OBProxy, and any
//! MySQL-protocol server. Written only against `wit/plugin.wit`: it speaks the
//! MySQL client handshake itself over the TCP sockets the host lends it
//! (granted exactly the credential's targets), with no help from the host.

mod handshake;
mod property;
mod scramble;

wit_bindgen::generate!({ world: "verifier", path: "../../wit" });

use credhost::plugin::log::{self, Level};
use exports::credhost::plugin::verification::{
    Descriptor, Detail, Guest, Normalized, Purpose, Reason, Refusal, Secret, Target,
};

struct ObVerifier;

impl Guest for ObVerifier {
    fn describe() -> Descriptor {
        Descriptor {
            target_type: "OB".into(),
            property_field: "ob_credential_property".into(),
            public_field: "ob_secret".into(),
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    fn normalize(property: String, purpose: Purpose) -> Result<Normalized, Refusal> {
        let p = property::parse(&property).map_err(|(code, message)| Refusal {
            code: code.into(),
            message,
        })?;
        let secret = if matches!(purpose, Purpose::Update) && p.passphrase.is_empty() {
            Secret::Keep
        } else {
            Secret::Replace(p.passphrase.clone().into_bytes())
        };
        Ok(Normalized {
            public: p.public_json(),
            secret,
            targets: p
                .targets
                .iter()
                .map(|t| Target {
                    ip: t.ip.clone(),
                    port: t.port,
                })
                .collect(),
            search_terms: vec![p.username.clone()],
        })
    }

    fn verify(public: String, secret: Vec<u8>) -> Vec<Detail> {
        let Ok(public) = property::Public::from_json(&public) else {
            return vec![failed(
                Target {
                    ip: String::new(),
                    port: 0,
                },
                Reason::Other,
                "unreadable public part".into(),
            )];
        };
        let password = String::from_utf8_lossy(&secret).into_owned();
        public
            .targets
            .iter()
            .map(|t| {
                let target = Target {
                    ip: t.ip.clone(),
                    port: t.port,
                };
                match handshake::login(&t.ip, t.port, &public.username, &password) {
                    Ok(server) => {
                        log::emit(
                            Level::Debug,
                            &format!("logged in to {}:{} ({server})", t.ip, t.port),
                        );
                        Detail {
                            target,
                            connection_result: "SUCCESS".into(),
                            reason: Reason::Ok,
                            message: String::new(),
                        }
                    }
                    Err(e) => failed(target, e.reason(), e.to_string()),
                }
            })
            .collect()
    }
}

fn failed(target: Target, reason: Reason, message: String) -> Detail {
    Detail {
        message: format!(
            "OB validation failed: {}:{}: {message}",
            target.ip, target.port
        ),
        target,
        connection_result: "CONNECT_FAILED".into(),
        reason,
    }
}

export!(ObVerifier);
