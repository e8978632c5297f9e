//! credhost verifier for target type `HOST`: obshell's `ssh_credential_property`,
//! proven by a password login over SSH through the host's `ssh` capability.

mod property;
mod verdict;

wit_bindgen::generate!({ world: "verifier", path: "../../wit" });

use credhost::plugin::ssh;
use exports::credhost::plugin::verification::{
    Descriptor, Detail, Guest, Normalized, Purpose, Refusal, Secret,
};

struct SshVerifier;

impl Guest for SshVerifier {
    fn describe() -> Descriptor {
        Descriptor {
            target_type: "HOST".into(),
            property_field: "ssh_credential_property".into(),
            public_field: "ssh_secret".into(),
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    fn normalize(property: String, purpose: Purpose) -> Result<Normalized, Refusal> {
        let parsed = property::parse(&property, purpose).map_err(|r| Refusal {
            code: r.code.into(),
            message: r.message,
        })?;
        let secret = match (&purpose, parsed.passphrase.is_empty()) {
            // obshell's edit form sends an empty passphrase to mean "unchanged".
            (Purpose::Update, true) => Secret::Keep,
            _ => Secret::Replace(parsed.passphrase.clone().into_bytes()),
        };
        Ok(Normalized {
            public: parsed.public_json(),
            secret,
            targets: parsed
                .targets
                .iter()
                .map(property::Endpoint::to_wit)
                .collect(),
            search_terms: vec![parsed.username.clone()],
        })
    }

    fn verify(public: String, secret: Vec<u8>) -> Vec<Detail> {
        let Ok(public) = property::Public::from_json(&public) else {
            return vec![verdict::unreadable("the stored public part is not valid")];
        };
        let Ok(password) = String::from_utf8(secret) else {
            return vec![verdict::unreadable(
                "the stored passphrase is not valid UTF-8",
            )];
        };
        let targets: Vec<_> = public
            .targets
            .iter()
            .map(property::Endpoint::to_ssh)
            .collect();
        ssh::password_login(&targets, &public.username, &password)
            .into_iter()
            .map(verdict::from_login)
            .collect()
    }
}

export!(SshVerifier);
