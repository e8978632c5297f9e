//! `ssh_credential_property`, read with obshell's rules in obshell's order
//! (required fields, targets, username, type, passphrase), plus the
//! `PUBLIC_KEY` type: `private_key` (OpenSSH or PEM text) and its optional
//! `passphrase`.

use credhost_plugin_sdk::{
    Names, Normalized, Property, Purpose, Refusal, Secret, Target, endpoints, max_bytes, max_chars,
    push_string, secret, ssh,
};
use serde::{Deserialize, Serialize};

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

const NAMES: Names = Names {
    field: "ssh_credential_property",
    go_struct: "SshCredentialProperty",
};
const DEFAULT_PORT: u16 = 22;
const MAX_USERNAME_CHARS: usize = 256;
const MAX_PASSPHRASE_BYTES: usize = 4096;
const MAX_PRIVATE_KEY_BYTES: usize = 16 * 1024;
const PASSWORD: &str = "PASSWORD";
const PUBLIC_KEY: &str = "PUBLIC_KEY";

/// The public part, as shown under `ssh_secret` and handed back to
/// `verify-target`. For a key, only its type and fingerprint. It borrows
/// what it can: `normalize` writes it from strings it holds anyway, and
/// `verify-target` reads it from the text it was given.
#[derive(Debug, Serialize, Deserialize)]
pub struct Public<'a> {
    #[serde(borrow)]
    pub targets: Vec<Endpoint<'a>>,
    #[serde(borrow)]
    pub username: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint<'a> {
    #[serde(borrow)]
    pub ip: Cow<'a, str>,
    pub port: u16,
}

/// A key credential's secret, as sealed.
#[derive(Serialize, Deserialize)]
struct KeySecret {
    private_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    passphrase: Option<String>,
}

/// How the stored secret logs in.
pub enum Login {
    Password(String),
    Key {
        private_key: String,
        passphrase: Option<String>,
    },
}

impl<'a> Public<'a> {
    pub fn from_json(text: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The JSON `Serialize` writes, written directly: its shape is fixed,
    /// and serde's walk (every key escaped on every call) was a sixth of
    /// the guest's work in `normalize`, which runs on every request that
    /// carries a property.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(128);
        out.push_str("{\"targets\":[");
        for (i, target) in self.targets.iter().enumerate() {
            out.push_str(if i == 0 { "{\"ip\":" } else { ",{\"ip\":" });
            push_string(&mut out, &target.ip);
            out.push_str(",\"port\":");
            out.push_str(itoa::Buffer::new().format(target.port));
            out.push('}');
        }
        out.push_str("],\"username\":");
        push_string(&mut out, &self.username);
        out.push_str(",\"type\":");
        push_string(&mut out, &self.kind);
        for (key, value) in [
            (",\"key_type\":", &self.key_type),
            (",\"key_fingerprint\":", &self.key_fingerprint),
        ] {
            if let Some(value) = value {
                out.push_str(key);
                push_string(&mut out, value);
            }
        }
        out.push('}');
        out
    }

    pub fn login(&self, secret: &[u8]) -> Result<Login, &'static str> {
        if self.kind == PUBLIC_KEY {
            let key: KeySecret =
                serde_json::from_slice(secret).map_err(|_| "the stored key is not readable")?;
            return Ok(Login::Key {
                private_key: key.private_key,
                passphrase: key.passphrase,
            });
        }
        String::from_utf8(secret.to_vec())
            .map(Login::Password)
            .map_err(|_| "the stored passphrase is not valid UTF-8")
    }
}

pub fn normalize(
    text: &str,
    purpose: Purpose,
    stored: Option<&str>,
) -> Result<Normalized, Refusal> {
    let property = Property::parse(text, NAMES, purpose)?;
    let raw_targets = property.targets()?;
    let username = property.string("username")?;
    let kind = property.string("type")?;
    let passphrase = property.nullable_string("passphrase")?;
    let private_key = property.string("private_key")?;
    let is_key = kind.as_deref() == Some(PUBLIC_KEY);
    property.require(&[
        ("Targets", raw_targets.is_none()),
        ("Username", username.as_deref().is_none_or(str::is_empty)),
        ("Type", kind.as_deref().is_none_or(str::is_empty)),
        if is_key {
            (
                "PrivateKey",
                private_key.is_none() && purpose != Purpose::Update,
            )
        } else {
            ("Passphrase", passphrase.is_none())
        },
    ])?;
    let targets = endpoints(&raw_targets.unwrap_or_default(), DEFAULT_PORT, "SSH port")?;
    let username = username.unwrap_or_default();
    max_chars("username", &username, MAX_USERNAME_CHARS)?;
    let kind = kind.unwrap_or_default();
    if kind != PASSWORD && kind != PUBLIC_KEY {
        return Err(Refusal::auth_type(
            "Unsupported authentication type, currently only supports PASSWORD and PUBLIC_KEY",
        ));
    }
    let passphrase = passphrase.unwrap_or_default();
    max_bytes("passphrase", passphrase.as_bytes(), MAX_PASSPHRASE_BYTES)?;
    let private_key = private_key.unwrap_or_default();
    max_bytes("private_key", private_key.as_bytes(), MAX_PRIVATE_KEY_BYTES)?;
    let stored = stored.and_then(|s| Public::from_json(s).ok());
    let stored_kind = stored.as_ref().map(|s| s.kind.as_ref());

    let mut public = Public {
        targets: targets
            .iter()
            .map(|t| Endpoint {
                ip: Cow::Borrowed(&t.ip),
                port: t.port,
            })
            .collect(),
        username: Cow::Borrowed(&username),
        kind: Cow::Borrowed(&kind),
        key_type: None,
        key_fingerprint: None,
    };
    let secret = if is_key {
        key_secret(
            &private_key,
            &passphrase,
            purpose,
            stored.as_ref(),
            &mut public,
        )?
    } else {
        let kept = secret(passphrase.as_bytes(), purpose);
        if matches!(kept, Secret::Keep) && stored_kind == Some(PUBLIC_KEY) {
            return Err(Refusal::illegal(
                "switching to PASSWORD needs the passphrase",
            ));
        }
        kept
    };
    let shown = public.to_json();
    // It borrows the targets and the username, which go into the answer.
    drop(public);
    Ok(Normalized {
        public: shown,
        secret,
        targets: targets
            .into_iter()
            .map(|t| Target {
                ip: t.ip,
                port: t.port,
            })
            .collect(),
        search_terms: vec![username],
    })
}

/// A key credential's secret: the key (and its passphrase) when sent, with
/// the key's type and fingerprint in the public part; or, on update without
/// a key, the stored one and its stored fingerprint.
fn key_secret(
    private_key: &str,
    passphrase: &str,
    purpose: Purpose,
    stored: Option<&Public>,
    public: &mut Public,
) -> Result<Secret, Refusal> {
    if private_key.is_empty() {
        let stored = stored.filter(|s| s.kind == PUBLIC_KEY && purpose == Purpose::Update);
        let Some(stored) = stored else {
            return Err(Refusal::illegal(
                "a PUBLIC_KEY credential needs its private_key",
            ));
        };
        if !passphrase.is_empty() {
            return Err(Refusal::illegal(
                "send the private_key with its passphrase, or neither to keep the stored key",
            ));
        }
        public.key_type = stored.key_type.clone();
        public.key_fingerprint = stored.key_fingerprint.clone();
        return Ok(Secret::Keep);
    }
    let passphrase = (!passphrase.is_empty()).then(|| passphrase.to_string());
    let (key_type, fingerprint) = ssh::key_fingerprint(private_key, passphrase.as_deref())
        .map_err(|e| Refusal::illegal(format!("the private key cannot be read: {e}")))?;
    public.key_type = Some(key_type);
    public.key_fingerprint = Some(fingerprint);
    let sealed = KeySecret {
        private_key: private_key.to_string(),
        passphrase,
    };
    Ok(Secret::Replace(
        serde_json::to_vec(&sealed).expect("plain data serialises"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON written by hand is what `Serialize` writes, byte for byte.
    #[test]
    fn the_public_part_is_written_as_serde_writes_it() {
        let endpoint = |ip: &'static str, port| Endpoint {
            ip: Cow::Borrowed(ip),
            port,
        };
        let key = |s: &str| Some(String::from(s));
        for public in [
            Public {
                targets: vec![endpoint("127.0.0.1", 22), endpoint("::1", 65535)],
                username: Cow::Borrowed("root"),
                kind: Cow::Borrowed(PASSWORD),
                key_type: None,
                key_fingerprint: None,
            },
            Public {
                targets: vec![endpoint("127.0.0.9", 1)],
                username: Cow::Borrowed("a\"b\\c\n\u{1}é"),
                kind: Cow::Borrowed(PUBLIC_KEY),
                key_type: key("ssh-ed25519"),
                key_fingerprint: key("SHA256:abc/+"),
            },
            Public {
                targets: vec![endpoint("fe80::1", 22)],
                username: Cow::Borrowed("k"),
                kind: Cow::Borrowed(PUBLIC_KEY),
                key_type: key("ecdsa-sha2-nistp256"),
                key_fingerprint: None,
            },
            Public {
                targets: vec![],
                username: Cow::Borrowed(""),
                kind: Cow::Borrowed(PUBLIC_KEY),
                key_type: None,
                key_fingerprint: key("SHA256:x"),
            },
        ] {
            assert_eq!(public.to_json(), serde_json::to_string(&public).unwrap());
        }
    }
}
