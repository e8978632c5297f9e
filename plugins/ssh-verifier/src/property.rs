//! `ssh_credential_property`, read with obshell's rules in obshell's order
//! (required fields, targets, username, type, passphrase), plus the
//! `PUBLIC_KEY` type: `private_key` (OpenSSH or PEM text) and its optional
//! `passphrase`.

use credhost_plugin_sdk::{
    Json, Names, Normalized, Property, Purpose, Refusal, Secret, Target, endpoints, max_bytes,
    max_chars, push_endpoints, push_string, secret, ssh,
};

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
///
/// Written and read here, not by serde's derives: their error messages can
/// print a float, and float printing is 17 KiB of tables in the plugin's
/// memory image, pages every call maps (see `Number` in the SDK).
#[derive(Debug)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct Public<'a> {
    pub targets: Vec<Endpoint<'a>>,
    pub username: Cow<'a, str>,
    #[cfg_attr(test, serde(rename = "type"))]
    pub kind: Cow<'a, str>,
    #[cfg_attr(test, serde(skip_serializing_if = "Option::is_none"))]
    pub key_type: Option<String>,
    #[cfg_attr(test, serde(skip_serializing_if = "Option::is_none"))]
    pub key_fingerprint: Option<String>,
}

#[derive(Debug)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct Endpoint<'a> {
    pub ip: Cow<'a, str>,
    pub port: u16,
}

/// A key credential's secret, as sealed: `{"private_key":…}`, with
/// `"passphrase"` after it when there is one.
#[cfg_attr(test, derive(serde::Serialize))]
struct KeySecret {
    private_key: String,
    #[cfg_attr(test, serde(skip_serializing_if = "Option::is_none"))]
    passphrase: Option<String>,
}

impl KeySecret {
    fn to_json(&self) -> Vec<u8> {
        let mut out = String::with_capacity(self.private_key.len() + 64);
        out.push_str("{\"private_key\":");
        push_string(&mut out, &self.private_key);
        if let Some(passphrase) = &self.passphrase {
            out.push_str(",\"passphrase\":");
            push_string(&mut out, passphrase);
        }
        out.push('}');
        out.into_bytes()
    }

    fn from_json(text: &[u8]) -> Option<Self> {
        let text = core::str::from_utf8(text).ok()?;
        let mut private_key = None;
        let mut passphrase = None;
        for (key, value) in object(text)? {
            match key.as_ref() {
                "private_key" => once(&mut private_key, string(value)?)?,
                "passphrase" => once(&mut passphrase, nullable_string(value)?)?,
                _ => {}
            }
        }
        Some(Self {
            private_key: private_key?.into_owned(),
            passphrase: passphrase.flatten().map(Cow::into_owned),
        })
    }
}

/// The members of the JSON object `text` holds.
fn object(text: &str) -> Option<Vec<(Cow<'_, str>, Json<'_>)>> {
    match Json::parse(text) {
        Ok(Json::Object(pairs)) => Some(pairs),
        _ => None,
    }
}

/// Fills `slot`, which a key sent twice finds filled already: refused, as
/// serde's derives refuse a duplicate field.
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    slot.replace(value).is_none().then_some(())
}

fn string(value: Json<'_>) -> Option<Cow<'_, str>> {
    match value {
        Json::String(text) => Some(text),
        _ => None,
    }
}

/// `Some(None)` for `null`.
fn nullable_string(value: Json<'_>) -> Option<Option<Cow<'_, str>>> {
    match value {
        Json::Null => Some(None),
        other => string(other).map(Some),
    }
}

impl<'a> Endpoint<'a> {
    fn from_json(value: Json<'a>) -> Option<Self> {
        let Json::Object(pairs) = value else {
            return None;
        };
        let mut ip = None;
        let mut port = None;
        for (key, value) in pairs {
            match key.as_ref() {
                "ip" => once(&mut ip, string(value)?)?,
                "port" => {
                    let Json::Number(n) = value else {
                        return None;
                    };
                    once(&mut port, u16::try_from(n.as_u64()?).ok()?)?
                }
                _ => {}
            }
        }
        Some(Self {
            ip: ip?,
            port: port?,
        })
    }
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
    /// Reads what [`Public::to_json`] wrote: each field once and of its
    /// type, the optional ones absent or `null`, other keys ignored.
    pub fn from_json(text: &'a str) -> Option<Self> {
        let mut targets = None;
        let mut username = None;
        let mut kind = None;
        let mut key_type = None;
        let mut key_fingerprint = None;
        for (key, value) in object(text)? {
            match key.as_ref() {
                "targets" => {
                    let Json::Array(items) = value else {
                        return None;
                    };
                    let items = items.into_iter().map(Endpoint::from_json);
                    once(&mut targets, items.collect::<Option<Vec<_>>>()?)?
                }
                "username" => once(&mut username, string(value)?)?,
                "type" => once(&mut kind, string(value)?)?,
                "key_type" => once(&mut key_type, nullable_string(value)?)?,
                "key_fingerprint" => once(&mut key_fingerprint, nullable_string(value)?)?,
                _ => {}
            }
        }
        Some(Self {
            targets: targets?,
            username: username?,
            kind: kind?,
            key_type: key_type.flatten().map(Cow::into_owned),
            key_fingerprint: key_fingerprint.flatten().map(Cow::into_owned),
        })
    }

    /// The JSON `Serialize` writes, written directly: its shape is fixed,
    /// and serde's walk (every key escaped on every call) was a sixth of
    /// the guest's work in `normalize`, which runs on every request that
    /// carries a property.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(128);
        out.push_str("{\"targets\":");
        let targets = self.targets.iter().map(|t| (t.ip.as_ref(), t.port));
        push_endpoints(&mut out, targets);
        out.push_str(",\"username\":");
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
            let key = KeySecret::from_json(secret).ok_or("the stored key is not readable")?;
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
    let stored = stored.and_then(Public::from_json);
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
    Ok(Secret::Replace(sealed.to_json()))
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

    /// What `to_json` writes is read back whole, escapes undone.
    #[test]
    fn the_public_part_reads_back_what_was_written() {
        let written = Public {
            targets: vec![
                Endpoint {
                    ip: Cow::Borrowed("127.0.0.1"),
                    port: 22,
                },
                Endpoint {
                    ip: Cow::Borrowed("::1"),
                    port: 65535,
                },
            ],
            username: Cow::Borrowed("a\"b\\c\né"),
            kind: Cow::Borrowed(PUBLIC_KEY),
            key_type: Some("ssh-ed25519".into()),
            key_fingerprint: Some("SHA256:abc/+".into()),
        };
        let text = written.to_json();
        let read = Public::from_json(&text).unwrap();
        assert_eq!(read.to_json(), text);
        assert_eq!(read.username, written.username);
        assert_eq!(read.targets[1].port, 65535);
        // Optional fields absent or null; keys it does not know ignored.
        let read = Public::from_json(
            r#"{"targets":[{"ip":"127.0.0.2","port":1,"x":[]}],"username":"u","type":"PASSWORD","key_type":null,"other":{"a":1.5e3}}"#,
        )
        .unwrap();
        assert_eq!((read.key_type, read.key_fingerprint), (None, None));
        assert_eq!(read.targets[0].ip, "127.0.0.2");
    }

    /// Anything else is not a public part this plugin wrote: a field
    /// missing, sent twice, of another type, or a port out of range.
    #[test]
    fn a_public_part_of_another_shape_is_refused() {
        let good = r#"{"targets":[{"ip":"127.0.0.1","port":22}],"username":"u","type":"PASSWORD"}"#;
        assert!(Public::from_json(good).is_some());
        for bad in [
            "",
            "[]",
            "null",
            r#"{"targets":[{"ip":"127.0.0.1","port":22}],"type":"PASSWORD"}"#,
            r#"{"targets":[{"ip":"127.0.0.1"}],"username":"u","type":"PASSWORD"}"#,
            r#"{"targets":[{"port":22}],"username":"u","type":"PASSWORD"}"#,
            r#"{"targets":{},"username":"u","type":"PASSWORD"}"#,
            r#"{"targets":[{"ip":"127.0.0.1","port":22}],"username":"u","username":"v","type":"PASSWORD"}"#,
            r#"{"targets":[{"ip":"127.0.0.1","port":22,"port":23}],"username":"u","type":"PASSWORD"}"#,
            r#"{"targets":[{"ip":"127.0.0.1","port":65536}],"username":"u","type":"PASSWORD"}"#,
            r#"{"targets":[{"ip":"127.0.0.1","port":22.0}],"username":"u","type":"PASSWORD"}"#,
            r#"{"targets":[{"ip":"127.0.0.1","port":"22"}],"username":"u","type":"PASSWORD"}"#,
            r#"{"targets":[{"ip":"127.0.0.1","port":22}],"username":1,"type":"PASSWORD"}"#,
            r#"{"targets":[{"ip":"127.0.0.1","port":22}],"username":"u","type":null}"#,
            r#"{"targets":[{"ip":"127.0.0.1","port":22}],"username":"u","type":"PASSWORD","key_type":7}"#,
        ] {
            assert!(Public::from_json(bad).is_none(), "{bad}");
        }
    }

    /// A key secret is written as serde wrote the ones stored before, and
    /// those are read as they were.
    #[test]
    fn key_secrets_keep_the_stored_format() {
        for secret in [
            KeySecret {
                private_key: "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\\\"\n".into(),
                passphrase: Some("p\u{1}ä".into()),
            },
            KeySecret {
                private_key: "k".into(),
                passphrase: None,
            },
        ] {
            let written = secret.to_json();
            assert_eq!(written, serde_json::to_vec(&secret).unwrap());
            let read = KeySecret::from_json(&written).unwrap();
            assert_eq!(read.private_key, secret.private_key);
            assert_eq!(read.passphrase, secret.passphrase);
        }
        let read = KeySecret::from_json(br#"{"passphrase":null,"private_key":"k"}"#).unwrap();
        assert_eq!((read.private_key.as_str(), read.passphrase), ("k", None));
        for bad in [
            &b"{\"private_key\":\"\xff\"}"[..],
            br#"{"passphrase":"p"}"#,
            br#"{"private_key":null}"#,
            br#"{"private_key":"k","private_key":"k"}"#,
            br#""k""#,
        ] {
            assert!(KeySecret::from_json(bad).is_none());
        }
    }
}
