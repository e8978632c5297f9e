//! The plugin contract in the host's own terms: what the rest of the server
//! sees instead of the generated bindings.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::limits::Limits;
use crate::secret::Secret;

/// An endpoint of a credential, canonical (`IpAddr` display form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Target {
    pub ip: IpAddr,
    pub port: u16,
}

/// A server key a credential's secret was proven against at one endpoint:
/// later logins with the stored secret go only to a server presenting it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostKey {
    pub ip: IpAddr,
    pub port: u16,
    /// The key's algorithm, e.g. `ssh-ed25519`.
    pub key_type: String,
    /// `SHA256:` and the unpadded Base64 of the key blob's SHA-256, as
    /// OpenSSH prints it.
    pub fingerprint: String,
}

/// An endpoint as a plugin reported it in a verdict (obshell shows
/// `{"ip": "", "port": 0}` when a stored credential cannot be read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Endpoint {
    pub ip: String,
    pub port: u16,
}

impl From<Target> for Endpoint {
    fn from(t: Target) -> Self {
        Self {
            ip: t.ip.to_string(),
            port: t.port,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifierInfo {
    pub target_type: String,
    pub property_field: String,
    pub public_field: String,
    /// JSON Schemas of the property (as sent) and of the public part (as
    /// shown); a 0.1 plugin gives none, so they are `{"type": "object"}`.
    pub property_schema: serde_json::Value,
    pub public_schema: serde_json::Value,
    /// The error a failed verification is answered with, and its message.
    pub validation_failed_code: String,
    pub validation_failed_message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Create,
    Update,
    Validate,
}

#[derive(Debug, Clone)]
pub enum SecretChange {
    Keep,
    Replace(Secret),
}

/// A property that the plugin accepted, in canonical form.
#[derive(Debug, Clone)]
pub struct Normalized {
    /// A JSON object, as the plugin wrote it.
    pub public: String,
    pub secret: SecretChange,
    pub targets: Vec<Target>,
    pub search_terms: Vec<String>,
}

/// The obshell codes a property can be refused with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalCode {
    BindJsonFailed,
    IllegalArgument,
    InvalidIp,
    InvalidPort,
    AuthTypeNotSupported,
    /// Answered as `Common.IllegalArgument`.
    Other,
}

impl RefusalCode {
    pub fn obshell(self) -> &'static str {
        match self {
            RefusalCode::BindJsonFailed => "Common.BindJsonFailed",
            RefusalCode::IllegalArgument | RefusalCode::Other => "Common.IllegalArgument",
            RefusalCode::InvalidIp => "Common.InvalidIp",
            RefusalCode::InvalidPort => "Credential.SSH.InvalidPort",
            RefusalCode::AuthTypeNotSupported => "Credential.AuthType.NotSupported",
        }
    }

    /// A 0.1 plugin's code, which was a string.
    pub fn from_obshell(code: &str) -> Self {
        match code {
            "Common.BindJsonFailed" => RefusalCode::BindJsonFailed,
            "Common.IllegalArgument" => RefusalCode::IllegalArgument,
            "Common.InvalidIp" => RefusalCode::InvalidIp,
            "Credential.SSH.InvalidPort" => RefusalCode::InvalidPort,
            "Credential.AuthType.NotSupported" => RefusalCode::AuthTypeNotSupported,
            _ => RefusalCode::Other,
        }
    }
}

/// A property the plugin refused: an obshell error code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: RefusalCode,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    Ok,
    AuthFailed,
    Refused,
    Unreachable,
    Timeout,
    HostKeyMismatch,
    ProtocolError,
    NotGranted,
    Other,
    /// The stored secret could not be opened (host-side, never from a plugin).
    SecretUnreadable,
    /// No verifier for the credential's target type is installed (host-side).
    Unsupported,
    /// Not tried: the caller's secrets for this target were rejected too
    /// often recently (host-side).
    Throttled,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "OK",
            Reason::AuthFailed => "AUTH_FAILED",
            Reason::Refused => "REFUSED",
            Reason::Unreachable => "UNREACHABLE",
            Reason::Timeout => "TIMEOUT",
            Reason::HostKeyMismatch => "HOST_KEY_MISMATCH",
            Reason::ProtocolError => "PROTOCOL_ERROR",
            Reason::NotGranted => "NOT_GRANTED",
            Reason::Other => "OTHER",
            Reason::SecretUnreadable => "SECRET_UNREADABLE",
            Reason::Unsupported => "UNSUPPORTED",
            Reason::Throttled => "THROTTLED",
        }
    }
}

/// The verdict for one target.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Detail {
    pub target: Endpoint,
    /// obshell's: `SUCCESS` when the reason is `OK`, else `CONNECT_FAILED`.
    pub connection_result: &'static str,
    pub reason: Reason,
    pub message: String,
}

/// Bytes of a plugin's message kept (a verdict's or a refusal's).
pub const MAX_DETAIL_MESSAGE: usize = 1024;

/// A plugin's message cut to its first KiB, at a character: one detail per
/// target is kept with the credential, and a thousand targets' verdicts
/// (or a refusal) stay small whatever each call may return.
pub fn cut(mut message: String) -> String {
    if message.len() > MAX_DETAIL_MESSAGE {
        message.truncate(message.floor_char_boundary(MAX_DETAIL_MESSAGE));
        message.push('…');
    }
    message
}

/// A plugin's message with what it could quote of the secret it was given
/// blanked: the secret's text and, for a secret that is a JSON object (a
/// key and its passphrase), each of its string values. A plugin should
/// never quote its secret; this keeps one that does out of the answer, the
/// log and the stored validation. Pieces under 4 bytes are left: they
/// would blank common words, and tell little.
pub fn scrub(message: String, secret: &[u8]) -> String {
    Scrubber::of(secret).apply(message)
}

/// The pieces [`scrub`] blanks, found once per credential and applied to
/// each of its targets' verdicts. They are copies of secrets: wiped when
/// dropped.
pub struct Scrubber(zeroize::Zeroizing<Vec<String>>, Whole);

/// Whether a text is masked whole: when what to mask in it is not known
/// (what a policy opened in a call that failed), or too much to look for;
/// or not shown at all (`Drop`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Whole {
    No,
    Yes,
    Drop,
}

/// Pieces looked for at most; past that, text is masked whole. A property
/// repeating its secret field thousands of times would otherwise cost a
/// scan of the text per copy.
const MAX_PIECES: usize = 64;
/// What of a text is looked through: ours are cut far shorter when shown.
const MAX_MASKED: usize = 64 * 1024;
/// The shortest piece masked.
const MIN_PIECE: usize = 4;

/// How many bytes at the end of `text` begin `piece` (all of it but its
/// last byte at most): the part of a copy of `piece` that a cut left.
/// Linear in both (Knuth–Morris–Pratt), whatever the two repeat.
fn overlap(text: &[u8], piece: &[u8]) -> usize {
    if piece.len() < 2 {
        return 0;
    }
    // `border[i]`: the longest proper prefix of `piece[..=i]` that also ends it.
    let mut border = vec![0; piece.len()];
    let mut k = 0;
    for i in 1..piece.len() {
        while k > 0 && piece[i] != piece[k] {
            k = border[k - 1];
        }
        if piece[i] == piece[k] {
            k += 1;
        }
        border[i] = k;
    }
    let mut k = 0;
    for &byte in &text[text.len().saturating_sub(piece.len() - 1)..] {
        while k > 0 && byte != piece[k] {
            k = border[k - 1];
        }
        if byte == piece[k] {
            k += 1;
        }
    }
    // At most `piece.len() - 1` bytes were read: never all of it.
    k
}

/// A JSON object's fields as sent, each one, repeated names included (a
/// map would keep one of them), with its value's text as written.
struct Fields(Vec<(String, Box<serde_json::value::RawValue>)>);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Fields;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Fields, A::Error> {
                let mut fields = Vec::new();
                while let Some(field) = map.next_entry()? {
                    fields.push(field);
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

impl std::fmt::Debug for Scrubber {
    // The pieces are the secret: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scrubber({} pieces)", self.0.len())
    }
}

impl Scrubber {
    fn of_pieces(pieces: impl IntoIterator<Item = String>) -> Self {
        let mut all: Vec<String> = Vec::new();
        for piece in pieces {
            // As it reads inside JSON too (a key's line breaks as `\n`): a
            // plugin may quote the property as it was sent.
            let quoted = serde_json::to_string(&piece).expect("a string serialises");
            let escaped = &quoted[1..quoted.len() - 1];
            if escaped != piece {
                all.push(escaped.to_owned());
            }
            all.push(piece);
        }
        // Under 4 bytes, a piece would blank common words, and tell little.
        all.retain(|piece| piece.len() >= MIN_PIECE);
        // Longest first: a shorter piece inside a longer one (a username
        // in a password) blanked first would leave the rest of it.
        all.sort_unstable_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        all.dedup();
        let whole = if all.len() > MAX_PIECES {
            Whole::Yes
        } else {
            Whole::No
        };
        Self(zeroize::Zeroizing::new(all), whole)
    }

    /// Masks nothing: for a call handed no secret.
    pub fn none() -> Self {
        Self(zeroize::Zeroizing::new(Vec::new()), Whole::No)
    }

    /// Masks every text whole: what is secret in it is not known.
    pub fn everything() -> Self {
        Self(zeroize::Zeroizing::new(Vec::new()), Whole::Yes)
    }

    /// Shows nothing: for the lines of a run that ended in an ask, whose
    /// secret is not known yet. The plugin runs again from the start with
    /// the answer, and logs them again, masked by what that run answers.
    pub fn dropping() -> Self {
        Self(zeroize::Zeroizing::new(Vec::new()), Whole::Drop)
    }

    /// Whether it shows nothing.
    pub fn drops(&self) -> bool {
        self.1 == Whole::Drop
    }

    /// The mask of a call handed no secret, whatever it answered.
    pub fn for_nothing<T>(_: Option<&T>) -> Self {
        Self::none()
    }

    /// What a `normalize` was handed and answered. The secret fields of a
    /// request's `property`: the values of the fields `schema` marks
    /// `writeOnly` (a passphrase, a private key), named as obshell binds
    /// them (in any case, as Go folds it), both as they read and as the
    /// request spelled them (`\u0026` for `&`, as Go writes it). A schema
    /// that marks none (every 0.1 plugin's) says nothing of which fields are
    /// secret: then every string value of the property is masked. And the
    /// `secret` it answered, as [`Self::of`] finds it: a plugin may log a
    /// secret it derived.
    pub fn of_normalize(property: &str, schema: &serde_json::Value, secret: Option<&[u8]>) -> Self {
        // A secret that is not text would be logged encoded, if at all.
        let answered = match secret {
            Some(bytes) if std::str::from_utf8(bytes).is_err() => Self::encodings(bytes).to_vec(),
            Some(text) => Self::pieces_of(text),
            None => Vec::new(),
        };
        Self::of_pieces(
            Self::property_pieces(property, schema)
                .into_iter()
                .chain(answered),
        )
    }

    fn property_pieces(property: &str, schema: &serde_json::Value) -> Vec<String> {
        let secret_fields: Vec<&String> = (schema["properties"].as_object())
            .into_iter()
            .flatten()
            .filter(|(_, field)| field["writeOnly"] == serde_json::Value::Bool(true))
            .map(|(name, _)| name)
            .collect();
        // Not an object (a bare string, say): the whole of it is masked.
        let Ok(Fields(fields)) = serde_json::from_str::<Fields>(property) else {
            let inner = serde_json::from_str::<String>(property).ok();
            return std::iter::once(property.to_owned()).chain(inner).collect();
        };
        let mut pieces = Vec::new();
        for (name, raw) in fields {
            let secret = secret_fields.is_empty()
                || secret_fields
                    .iter()
                    .any(|field| credhost_binding::names(&name, field));
            if !secret {
                continue;
            }
            let spelled = raw.get();
            match serde_json::from_str::<String>(spelled) {
                Ok(text) => {
                    pieces.push(spelled[1..spelled.len() - 1].to_owned());
                    pieces.push(text);
                }
                // A passphrase typed as digits, say: masked as written.
                Err(_) => pieces.push(spelled.to_owned()),
            }
        }
        pieces
    }

    pub fn of(secret: &[u8]) -> Self {
        Self::of_pieces(Self::pieces_of(secret))
    }

    /// A secret's text and, when it is a JSON object (a key and its
    /// passphrase, say), each of its string values.
    fn pieces_of(secret: &[u8]) -> Vec<String> {
        let Ok(text) = std::str::from_utf8(secret) else {
            return Vec::new();
        };
        let values: Vec<String> =
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
                .map(|object| {
                    object
                        .into_iter()
                        .filter_map(|(_, value)| match value {
                            serde_json::Value::String(text) => Some(text),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
        std::iter::once(text.to_owned()).chain(values).collect()
    }

    /// What an encryption policy's call was handed: the key, in the forms
    /// a line would print it in (hex, Base64), and each plaintext as
    /// [`Self::of`] finds it.
    pub fn of_sealing<'a>(key: &[u8], plaintexts: impl IntoIterator<Item = &'a [u8]>) -> Self {
        Self::of_pieces(
            Self::encodings(key)
                .into_iter()
                .chain(plaintexts.into_iter().flat_map(Self::pieces_of)),
        )
    }

    /// Bytes as a line would print them: hex (either case), Base64.
    fn encodings(bytes: &[u8]) -> [String; 4] {
        use base64::Engine as _;
        use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
        [
            hex::encode(bytes),
            hex::encode_upper(bytes),
            // Unpadded: a padded form contains it, and is masked with it.
            STANDARD_NO_PAD.encode(bytes),
            URL_SAFE_NO_PAD.encode(bytes),
        ]
    }

    pub fn apply(&self, message: String) -> String {
        self.apply_to(message, false)
    }

    /// [`Self::apply`] to a text that may have been `cut` short, and may
    /// end inside a secret: what is left of the secret at its end is
    /// masked too, where finding only whole pieces would leave it.
    pub fn apply_to(&self, mut message: String, mut cut: bool) -> String {
        if self.1 == Whole::Drop {
            return String::new();
        }
        if self.1 == Whole::Yes {
            return if message.is_empty() {
                message
            } else {
                "******".into()
            };
        }
        if message.len() > MAX_MASKED {
            message.truncate(message.floor_char_boundary(MAX_MASKED));
            cut = true;
        }
        // What a cut left of a secret is found in the text as it was (a
        // shorter piece masked inside it first would hide it), and the text
        // is cut again where the earliest such rest begins.
        let rest = if cut { self.cut_rest(&message) } else { None };
        if let Some(at) = rest {
            message.truncate(at);
        }
        for piece in self.0.iter() {
            if message.contains(piece.as_str()) {
                message = message.replace(piece.as_str(), "******");
            }
        }
        if rest.is_some() {
            message.push_str("******");
        }
        message
    }
}

impl Scrubber {
    /// Where the part of a secret that `text`'s end cut off begins, if
    /// any: the earliest start of a piece's longest beginning that ends the
    /// text, moved back over any whole piece that runs across it.
    fn cut_rest(&self, text: &str) -> Option<usize> {
        let mut at = (self.0.iter())
            .map(|piece| overlap(text.as_bytes(), piece.as_bytes()))
            .filter(|&len| len >= MIN_PIECE)
            .map(|len| text.len() - len)
            .min()?;
        loop {
            let across = (self.0.iter())
                .flat_map(|piece| text.match_indices(piece.as_str()))
                .filter(|(start, piece)| *start < at && start + piece.len() > at)
                .map(|(start, _)| start)
                .min();
            match across {
                Some(start) => at = start,
                None => return Some(text.floor_char_boundary(at)),
            }
        }
    }
}

impl Detail {
    pub fn new(target: Endpoint, reason: Reason, message: String) -> Self {
        let message = cut(message);
        Self {
            target,
            connection_result: if reason == Reason::Ok {
                "SUCCESS"
            } else {
                "CONNECT_FAILED"
            },
            reason,
            message,
        }
    }

    pub fn succeeded(&self) -> bool {
        self.reason == Reason::Ok
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "path")]
pub enum Source {
    Embedded,
    Directory(PathBuf),
}

/// What operators see of a loaded plugin.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PluginMeta {
    pub name: String,
    pub version: String,
    pub sha256: String,
    /// The contract version it was built against, e.g. `credhost:plugin@0.3.0`.
    pub wit: &'static str,
    /// `{"kind": "embedded"}` or `{"kind": "directory", "path": …}`.
    #[schema(value_type = Object)]
    pub source: Source,
    pub limits: Limits,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyInfo {
    pub name: String,
    pub algorithm: String,
    pub key_length: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_normalize_answer_that_is_not_text_is_masked_as_printed() {
        let secret = [0xff, 0x00, 0x13, 0x37, 0xc0, 0xde];
        let scrubber = Scrubber::of_normalize("{}", &serde_json::json!({}), Some(&secret));
        for form in [hex::encode(secret), hex::encode_upper(secret)] {
            assert_eq!(scrubber.apply(format!("derived {form}")), "derived ******");
        }
    }

    #[test]
    fn what_a_cut_left_of_a_secret_is_masked() {
        let secret: String = (0..20_000).map(|i| format!("{i:05}")).collect();
        let scrubber = Scrubber::of(secret.as_bytes());
        // Cut by the host before masking: the end of a held line.
        let line = format!("got {}", &secret[..5_000]);
        assert_eq!(scrubber.apply_to(line.clone(), true), "got ******");
        // Not cut: a text that merely ends as a secret begins is its own.
        assert_eq!(scrubber.apply(line.clone()), line);
        // Cut by the mask itself, past what it looks through.
        let long = format!("{}{secret} and more", "x".repeat(MAX_MASKED - 30));
        let masked = scrubber.apply(long);
        assert_eq!(masked, format!("{}******", "x".repeat(MAX_MASKED - 30)));
        // A shorter piece inside the cut one, or across where its rest
        // begins, hides nothing of it.
        let nested = |pieces: &[&str], text: &str| {
            Scrubber::of_pieces(pieces.iter().map(|p| p.to_string())).apply_to(text.into(), true)
        };
        assert_eq!(
            nested(
                &["deploy", "deploy-S3cret-Passw0rd"],
                "login deploy-S3cret-Pa"
            ),
            "login ******"
        );
        assert_eq!(
            nested(&["Secret-ABCDEFGHIJ", "bob-Secret-X"], "user bob-Secr"),
            "user ******"
        );
        assert_eq!(
            nested(
                &[
                    "OPENSSH",
                    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA"
                ],
                "key -----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn"
            ),
            "key ******"
        );
        assert_eq!(
            nested(
                &["hunter22", "xyz-hunter22-tail"],
                "a hunter22 b xyz-hunter"
            ),
            "a ****** b ******"
        );
        // A piece that repeats itself: the longest end that begins it.
        let scrubber = Scrubber::of(b"abababx-secret");
        assert_eq!(scrubber.apply_to("a ababab".into(), true), "a ******");
        assert_eq!(scrubber.apply_to("a abx".into(), true), "a abx");
        assert_eq!(overlap(b"zzabab", b"ababx"), 4);
        assert_eq!(overlap(b"ababx", b"ababx"), 0);
        assert_eq!(overlap(b"", b"ababx"), 0);
    }

    #[test]
    fn a_quoted_secret_is_blanked_and_a_key_s_parts_too() {
        assert_eq!(
            scrub("no: hunter22 (hunter22)".into(), b"hunter22"),
            "no: ****** (******)"
        );
        let key = br#"{"private_key":"-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn","passphrase":"pass-4471"}"#;
        assert_eq!(
            scrub("wrong passphrase pass-4471".into(), key),
            "wrong passphrase ******"
        );
        // Too short to blank without blanking words; bytes that are not text.
        assert_eq!(scrub("root was refused".into(), b"oot"), "root was refused");
        assert_eq!(scrub("fine".into(), &[0xff, 0xfe, 0x00, 0x01]), "fine");
        assert_eq!(cut("é".repeat(600)), format!("{}…", "é".repeat(512)));
    }

    #[test]
    fn a_policy_s_key_is_blanked_in_the_forms_it_prints_in() {
        use base64::Engine as _;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        // Bytes whose Base64 has both `+` and `/` (`-` and `_` URL-safe).
        let key = [0xfb, 0xff, 0xbf, 0xfe, 0x10, 0x42, 0x99, 0x07];
        let scrubber = Scrubber::of_sealing(&key, [b"hunter22".as_slice()]);
        for form in [
            hex::encode(key),
            hex::encode_upper(key),
            STANDARD.encode(key),
            URL_SAFE.encode(key),
        ] {
            let masked = scrubber.apply(format!("key {form} end"));
            assert!(
                masked.starts_with("key ******") && masked.ends_with(" end"),
                "{masked}"
            );
        }
        assert_eq!(scrubber.apply("sealing hunter22".into()), "sealing ******");
    }

    #[test]
    fn a_secret_is_blanked_as_json_quotes_it_and_before_what_it_contains() {
        let key = "-----BEGIN KEY-----\nb3Blbn\"\\x\n-----END KEY-----";
        let property = serde_json::json!({ "private_key": key, "user": "admin" }).to_string();
        let scrubber =
            Scrubber::of_normalize(&property, &serde_json::json!({ "type": "object" }), None);
        assert_eq!(
            scrubber.apply(format!("got {property}")),
            r#"got {"private_key":"******","user":"******"}"#
        );
        assert_eq!(scrubber.apply(format!("key {key}")), "key ******");
        // A value that holds another is blanked whole, not around it.
        let scrubber = Scrubber::of(br#"{"user": "admin", "password": "admin@2024"}"#);
        assert_eq!(scrubber.apply("admin@2024 admin".into()), "****** ******");
    }

    #[test]
    fn a_secret_is_blanked_as_the_request_spelled_it() {
        // As Go's encoder writes `&`, under a key Go folds onto the field.
        let property =
            r#"{"passphrase": "first-try-12", "pa\u017f\u017fphrase": "p\u0026ssw0rd-77"}"#;
        let schema = serde_json::json!({ "properties": {
            "passphrase": { "type": "string", "writeOnly": true } } });
        let scrubber = Scrubber::of_normalize(property, &schema, None);
        assert_eq!(
            scrubber.apply(format!("got {property}")),
            r#"got {"passphrase": "******", "pa\u017f\u017fphrase": "******"}"#
        );
        assert_eq!(scrubber.apply("p&ssw0rd-77".into()), "******");
    }

    #[test]
    fn what_cannot_be_looked_for_is_masked_whole() {
        // A passphrase typed as digits; a property that is no object.
        let schema = serde_json::json!({ "properties": {
            "passphrase": { "type": "string", "writeOnly": true } } });
        let scrubber = Scrubber::of_normalize(r#"{"passphrase": 84712290}"#, &schema, None);
        assert_eq!(scrubber.apply("it was 84712290".into()), "it was ******");
        let scrubber = Scrubber::of_normalize(r#""hunter22""#, &schema, None);
        assert_eq!(scrubber.apply("got hunter22".into()), "got ******");
        // A field repeated past what is looked for: the text goes whole.
        let many: Vec<String> = (0..100)
            .map(|i| format!(r#""passphrase": "secret-{i:03}""#))
            .collect();
        let property = format!("{{{}}}", many.join(", "));
        let scrubber = Scrubber::of_normalize(&property, &schema, None);
        assert_eq!(scrubber.apply("anything at all".into()), "******");
        assert_eq!(Scrubber::everything().apply("opened x".into()), "******");
    }

    #[test]
    fn a_property_s_secret_fields_are_those_its_schema_marks() {
        let property = r#"{"username": "root", "PassPhrase": "hunter22", "port": 22}"#;
        let schema = serde_json::json!({ "properties": {
            "username": { "type": "string" },
            "passphrase": { "type": "string", "writeOnly": true } } });
        let said = "root hunter22";
        assert_eq!(
            Scrubber::of_normalize(property, &schema, None).apply(said.into()),
            "root ******"
        );
        // A schema that marks none: every string is taken for a secret.
        let unmarked = serde_json::json!({ "type": "object" });
        assert_eq!(
            Scrubber::of_normalize(property, &unmarked, None).apply(said.into()),
            "****** ******"
        );
    }
}
