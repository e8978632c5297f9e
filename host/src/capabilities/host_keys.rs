//! Host-key pinning for one plugin call. A call that proves a secret the
//! caller just sent learns the keys its targets present (unless the
//! operator's `known_hosts` already names a key for a target, which must
//! then match); a call that uses a stored secret only talks to targets
//! presenting the key pinned for them, and to none without a pin. The check
//! runs during the key exchange, before anything secret is sent.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::plugins::HostKey;

/// `SHA256:…` of a public key blob (the SSH wire encoding), as OpenSSH
/// prints fingerprints.
pub fn fingerprint(blob: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob)))
}

/// The longest SSH key type taken (`sk-ecdsa-sha2-nistp256@openssh.com`
/// is 34 bytes).
const MAX_KEY_TYPE: usize = 64;
/// The largest host key blob taken (an RSA key of 16384 bits is about
/// 2 KiB).
const MAX_KEY_BLOB: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A caller-supplied secret: record what is presented.
    Learn,
    /// A stored secret: only pinned keys.
    Enforce,
}

#[derive(Debug)]
struct Inner {
    mode: Mode,
    expected: HashMap<SocketAddr, Vec<HostKey>>,
    /// Fingerprints of keys never to accept (`@revoked` in known_hosts).
    revoked: Arc<[String]>,
    presented: Mutex<Vec<HostKey>>,
}

/// What one call may accept, and what it saw.
#[derive(Debug, Clone)]
pub struct HostKeys(Arc<Inner>);

impl Default for HostKeys {
    /// Nothing pinned and nothing to learn: every key is refused.
    fn default() -> Self {
        Self::enforce(Vec::new())
    }
}

fn by_endpoint(keys: impl IntoIterator<Item = HostKey>) -> HashMap<SocketAddr, Vec<HostKey>> {
    let mut map: HashMap<SocketAddr, Vec<HostKey>> = HashMap::new();
    for key in keys {
        map.entry(SocketAddr::new(key.ip, key.port))
            .or_default()
            .push(key);
    }
    map
}

impl HostKeys {
    /// For a secret the caller sent: keys are learned, except where the
    /// operator's `preset` names some for an endpoint.
    pub fn learn(preset: Vec<HostKey>) -> Self {
        Self::with(Mode::Learn, preset, &KnownHosts::default())
    }

    /// For a stored secret: only these keys.
    pub fn enforce(pins: Vec<HostKey>) -> Self {
        Self::with(Mode::Enforce, pins, &KnownHosts::default())
    }

    /// As [`Self::learn`], with the pins `known` holds for `targets` preset
    /// and the keys it revokes refused wherever they are presented.
    pub fn learn_known(known: &KnownHosts, targets: impl IntoIterator<Item = SocketAddr>) -> Self {
        Self::learn_known_holding(known, targets, Vec::new())
    }

    /// As [`Self::learn_known`], with `pins` expected as `known`'s keys are
    /// where `known` names none: the operator's file speaks for an
    /// endpoint it names (a key put there because the pinned one leaked).
    pub fn learn_known_holding(
        known: &KnownHosts,
        targets: impl IntoIterator<Item = SocketAddr>,
        pins: Vec<HostKey>,
    ) -> Self {
        let mut expected = known.for_targets(targets);
        let named: Vec<(IpAddr, u16)> = expected.iter().map(|k| (k.ip, k.port)).collect();
        expected.extend(
            pins.into_iter()
                .filter(|p| !named.contains(&(p.ip, p.port))),
        );
        Self::with(Mode::Learn, expected, known)
    }

    /// As [`Self::enforce`], less the keys `known` revokes.
    pub fn enforce_known(pins: Vec<HostKey>, known: &KnownHosts) -> Self {
        Self::with(Mode::Enforce, pins, known)
    }

    fn with(mode: Mode, keys: Vec<HostKey>, known: &KnownHosts) -> Self {
        Self(Arc::new(Inner {
            mode,
            expected: by_endpoint(keys),
            revoked: known.revoked.clone(),
            presented: Mutex::new(Vec::new()),
        }))
    }

    /// Whether `target` may be sent a secret after presenting this key;
    /// the error names what was expected and what was presented.
    pub fn check(&self, target: SocketAddr, key_type: &str, blob: &[u8]) -> Result<(), String> {
        // What a plugin says a server presented may be pinned and shown
        // back to operators: a key type is an SSH algorithm name, a blob
        // the size of a key.
        let named = !key_type.is_empty()
            && key_type.len() <= MAX_KEY_TYPE
            && key_type
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"@.-_".contains(&b));
        if !named {
            return Err("not an SSH key type; nothing was sent".into());
        }
        if blob.is_empty() || blob.len() > MAX_KEY_BLOB {
            return Err(format!(
                "a host key is 1 to {MAX_KEY_BLOB} bytes; nothing was sent"
            ));
        }
        let presented = HostKey {
            ip: target.ip(),
            port: target.port(),
            key_type: key_type.to_string(),
            fingerprint: fingerprint(blob),
        };
        if self.0.revoked.contains(&presented.fingerprint) {
            return Err(format!(
                "the host key {} {} at {target} is revoked in known_hosts; nothing was sent",
                presented.key_type, presented.fingerprint
            ));
        }
        match (self.0.expected.get(&target), self.0.mode) {
            (Some(pins), _) if pins.iter().any(|p| p.fingerprint == presented.fingerprint) => {
                self.accept(presented, false)
            }
            (Some(pins), _) => Err(format!(
                "host key mismatch at {target}: expected {}, presented {} {}; nothing was sent",
                pins.iter()
                    .map(|p| format!("{} {}", p.key_type, p.fingerprint))
                    .collect::<Vec<_>>()
                    .join(" or "),
                presented.key_type,
                presented.fingerprint
            )),
            (None, Mode::Learn) => self.accept(presented, true),
            (None, Mode::Enforce) => Err(format!(
                "no host key is pinned for {target} (presented {} {}); nothing was sent: \
                 update the credential with its passphrase to pin the key",
                presented.key_type, presented.fingerprint
            )),
        }
    }

    /// Remembers a key the call accepted, one per endpoint (checking it
    /// again adds nothing). A key `learning` is the one pinned: another
    /// from the same endpoint in the same call is refused.
    fn accept(&self, presented: HostKey, learning: bool) -> Result<(), String> {
        let mut accepted = self.0.presented.lock().expect("host key lock");
        let endpoint = |k: &HostKey| (k.ip, k.port);
        match accepted
            .iter()
            .find(|k| endpoint(k) == endpoint(&presented))
        {
            None => {
                accepted.push(presented);
                Ok(())
            }
            Some(first) if learning && first.fingerprint != presented.fingerprint => Err(format!(
                "host key changed during the call at {}: first {} {}, now {} {}; \
                 nothing was sent",
                SocketAddr::new(presented.ip, presented.port),
                first.key_type,
                first.fingerprint,
                presented.key_type,
                presented.fingerprint
            )),
            Some(_) => Ok(()),
        }
    }

    /// The keys a secret may go to at `target` in this call (none revoked).
    pub fn pinned(&self, target: SocketAddr) -> Vec<HostKey> {
        let mut pins = self.0.expected.get(&target).cloned().unwrap_or_default();
        pins.retain(|p| !self.0.revoked.contains(&p.fingerprint));
        pins
    }

    /// The keys accepted during this call, one per endpoint.
    pub fn accepted(&self) -> Vec<HostKey> {
        let mut keys = self.0.presented.lock().expect("host key lock").clone();
        keys.sort_by_key(|k| (k.ip, k.port));
        keys.dedup_by(|a, b| (a.ip, a.port) == (b.ip, b.port));
        keys
    }
}

/// The operator's pre-seeded pins: an OpenSSH `known_hosts` file, whose
/// entries name hosts by IP (`192.0.2.5`, `[192.0.2.5]:2222`, or hashed
/// `|1|salt|hash` forms of those). A key marked `@revoked` is refused at
/// every target, whatever hosts its line names (stricter than OpenSSH,
/// which needs a host pattern to match). Entries naming hosts by name,
/// marked `@cert-authority`, or unreadable, are skipped.
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    entries: Vec<KnownEntry>,
    revoked: Arc<[String]>,
    /// Lines that are neither comments nor entries (a file caught half
    /// written, say).
    unreadable: usize,
}

#[derive(Debug, Clone)]
struct KnownEntry {
    /// Plain patterns, or (salt, hash) of the hashed form.
    names: Vec<String>,
    hashed: Option<(Vec<u8>, Vec<u8>)>,
    key_type: String,
    fingerprint: String,
}

impl KnownEntry {
    /// The entry of a line's hosts (plain names, or one hashed name);
    /// `None` for a hashed name that does not decode.
    fn of(hosts: &str, key_type: &str, fingerprint: String) -> Option<Self> {
        let key_type = key_type.to_string();
        if let Some(rest) = hosts.strip_prefix("|1|") {
            let (salt, hash) = rest.split_once('|')?;
            return Some(Self {
                names: Vec::new(),
                hashed: Some((STANDARD.decode(salt).ok()?, STANDARD.decode(hash).ok()?)),
                key_type,
                fingerprint,
            });
        }
        Some(Self {
            names: hosts.split(',').map(canonical_name).collect(),
            hashed: None,
            key_type,
            fingerprint,
        })
    }
}

impl KnownHosts {
    /// The file at `path`, if no one but its owner (the server's user or
    /// root) may write it: whoever may could pin a key of theirs for any
    /// target, and receive the stored passwords sent there.
    pub fn load(path: &Path) -> std::io::Result<Self> {
        use std::io::Read;
        use std::os::unix::fs::MetadataExt;
        let mut file = std::fs::File::open(path)?;
        // Nor a directory above it: the file could be swapped for another.
        crate::data_dir::check_directories_above(path).map_err(std::io::Error::other)?;
        let meta = file.metadata()?;
        let me = crate::data_dir::euid();
        let mode = meta.mode() & 0o7777;
        if (meta.uid() != me && meta.uid() != 0) || mode & 0o022 != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{} (uid {}, mode {mode:o}) must be the server's user's or root's and \
                     writable by no one else: whoever may write it chooses which keys get \
                     passwords",
                    path.display(),
                    meta.uid()
                ),
            ));
        }
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        Ok(Self::parse(&text))
    }

    pub fn parse(text: &str) -> Self {
        let mut known = Self::default();
        let mut revoked = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let marker = line.starts_with('@').then(|| parts.next()).flatten();
            let (Some(hosts), Some(key_type), Some(Ok(blob))) = (
                parts.next(),
                parts.next(),
                parts.next().map(|b| STANDARD.decode(b)),
            ) else {
                known.unreadable += 1;
                continue;
            };
            let fingerprint = fingerprint(&blob);
            match marker {
                Some("@revoked") => revoked.push(fingerprint),
                // `@cert-authority`, and markers OpenSSH does not have.
                Some(_) => {}
                None => known
                    .entries
                    .extend(KnownEntry::of(hosts, key_type, fingerprint)),
            }
        }
        known.revoked = revoked.into();
        known
    }

    /// Lines that are neither comments nor readable entries.
    pub fn unreadable(&self) -> usize {
        self.unreadable
    }

    /// Entries read, and keys revoked.
    pub fn counts(&self) -> (usize, usize) {
        (self.entries.len(), self.revoked.len())
    }

    /// The pins the file holds for these endpoints.
    pub fn for_targets(&self, targets: impl IntoIterator<Item = SocketAddr>) -> Vec<HostKey> {
        let mut pins = Vec::new();
        for target in targets {
            let name = host_pattern(target.ip(), target.port());
            for entry in &self.entries {
                let matches = match &entry.hashed {
                    Some((salt, hash)) => {
                        let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(salt)
                            .expect("HMAC takes any key length");
                        mac.update(name.as_bytes());
                        mac.verify_slice(hash).is_ok()
                    }
                    None => entry.names.contains(&name),
                };
                if matches {
                    pins.push(HostKey {
                        ip: target.ip(),
                        port: target.port(),
                        key_type: entry.key_type.clone(),
                        fingerprint: entry.fingerprint.clone(),
                    });
                }
            }
        }
        pins
    }
}

/// A plain known_hosts name spelt as `host_pattern` spells it, when it
/// names an address: `2001:DB8:0::1`, `[2001:db8::1]:22` and `2001:db8::1`
/// are one host, which an exact comparison would miss, and a target whose
/// pin was missed is a target whose key is learnt from whoever answers.
fn canonical_name(name: &str) -> String {
    let bracketed = name
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("]:"))
        .and_then(|(ip, port)| Some((ip.parse::<IpAddr>().ok()?, port.parse::<u16>().ok()?)));
    match (name.parse::<IpAddr>(), bracketed) {
        (Ok(ip), _) => host_pattern(ip.to_canonical(), 22),
        (_, Some((ip, port))) => host_pattern(ip.to_canonical(), port),
        _ => name.to_string(),
    }
}

/// How known_hosts names an endpoint: the bare address on port 22,
/// `[address]:port` otherwise.
fn host_pattern(ip: IpAddr, port: u16) -> String {
    if port == 22 {
        ip.to_string()
    } else {
        format!("[{ip}]:{port}")
    }
}

// ---- The `host-keys` interface of each contract version ----

use crate::plugins::bindings::{v0_1, v0_2, v0_3};
use crate::plugins::state::CallState;

pub fn link(linkers: &mut super::Linkers) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    v0_1::verifier::credhost::plugin::host_keys::add_to_linker::<_, HasSelf<CallState>>(
        &mut linkers.verifier_v0_1,
        |s| s,
    )?;
    v0_2::verifier::credhost::plugin::host_keys::add_to_linker::<_, HasSelf<CallState>>(
        &mut linkers.verifier_v0_2,
        |s| s,
    )?;
    v0_3::verifier::credhost::plugin::host_keys::add_to_linker::<_, HasSelf<CallState>>(
        &mut linkers.verifier_v0_3,
        |s| s,
    )?;
    Ok(())
}

impl CallState {
    /// The granted endpoint `ip:port` names, if it is one.
    fn granted(&self, ip: &str, port: u16) -> Result<SocketAddr, String> {
        ip.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, port))
            .filter(|addr| self.grant.permits(addr))
            .ok_or_else(|| "target is not among this call's targets".to_string())
    }
}

impl v0_1::verifier::credhost::plugin::host_keys::Host for CallState {
    fn check(
        &mut self,
        target: v0_1::verifier::credhost::plugin::types::Target,
        key_type: String,
        key: Vec<u8>,
    ) -> Result<(), String> {
        let addr = self.granted(&target.ip, target.port)?;
        self.grant.host_keys().check(addr, &key_type, &key)
    }
}

/// `host-keys` of 0.2 and 0.3, the same interface in two packages.
macro_rules! host_keys_host {
    ($version:ident) => {
        impl $version::verifier::credhost::plugin::host_keys::Host for CallState {
            fn check(
                &mut self,
                target: $version::verifier::credhost::plugin::types::Target,
                key_type: String,
                key: Vec<u8>,
            ) -> Result<(), String> {
                let addr = self.granted(&target.ip, target.port)?;
                self.grant.host_keys().check(addr, &key_type, &key)
            }

            fn pinned(
                &mut self,
                target: $version::verifier::credhost::plugin::types::Target,
            ) -> Vec<$version::verifier::credhost::plugin::types::HostKey> {
                let Ok(addr) = self.granted(&target.ip, target.port) else {
                    return Vec::new();
                };
                self.grant
                    .host_keys()
                    .pinned(addr)
                    .into_iter()
                    .map(|k| $version::verifier::credhost::plugin::types::HostKey {
                        target: target.clone(),
                        key_type: k.key_type,
                        fingerprint: k.fingerprint,
                    })
                    .collect()
            }
        }
    };
}

host_keys_host!(v0_2);
host_keys_host!(v0_3);

#[cfg(test)]
mod tests {
    use super::*;

    const BLOB_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    const BLOB_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIBvQ2B4ctYy3mHlEBBCSWz1pWWnnvr2qZkmTBdQqqKtB";

    fn target(port: u16) -> SocketAddr {
        SocketAddr::new("127.0.0.1".parse().unwrap(), port)
    }

    #[test]
    fn what_a_plugin_says_was_presented_is_held_to_the_shape_of_a_key() {
        let a = STANDARD.decode(BLOB_A).unwrap();
        let b = STANDARD.decode(BLOB_B).unwrap();
        let learning = HostKeys::learn(Vec::new());
        for key_type in ["", "ssh-ed25519\u{1b}[2J", "ssh ed25519", &"x".repeat(65)] {
            assert!(
                learning.check(target(22), key_type, &a).is_err(),
                "{key_type:?}"
            );
        }
        assert!(learning.check(target(22), "ssh-ed25519", &[]).is_err());
        assert!(
            learning
                .check(target(22), "ssh-ed25519", &vec![1; 16 * 1024 + 1])
                .is_err()
        );
        assert!(learning.accepted().is_empty());
        // The first key learned for an endpoint stays; checking it again
        // keeps one entry, and another key from it in the same call is
        // refused.
        let key_type = "sk-ecdsa-sha2-nistp256@openssh.com";
        for _ in 0..1000 {
            learning.check(target(22), key_type, &a).unwrap();
        }
        let changed = learning.check(target(22), key_type, &b).unwrap_err();
        assert!(changed.contains("changed during the call"), "{changed}");
        assert_eq!(learning.0.presented.lock().unwrap().len(), 1);
        assert_eq!(learning.accepted()[0].fingerprint, fingerprint(&a));
    }

    #[test]
    fn learn_records_enforce_checks() {
        let a = STANDARD.decode(BLOB_A).unwrap();
        let b = STANDARD.decode(BLOB_B).unwrap();
        let learning = HostKeys::learn(Vec::new());
        learning.check(target(22), "ssh-ed25519", &a).unwrap();
        let pins = learning.accepted();
        assert_eq!(pins.len(), 1);
        assert_eq!(pins[0].fingerprint, fingerprint(&a));
        assert!(pins[0].fingerprint.starts_with("SHA256:") && !pins[0].fingerprint.ends_with('='));

        let enforcing = HostKeys::enforce(pins.clone());
        assert!(enforcing.check(target(22), "ssh-ed25519", &a).is_ok());
        let refused = enforcing.check(target(22), "ssh-ed25519", &b).unwrap_err();
        assert!(refused.contains(&fingerprint(&a)) && refused.contains(&fingerprint(&b)));
        // Nothing pinned for another port: a stored secret does not go there.
        assert!(enforcing.check(target(2222), "ssh-ed25519", &a).is_err());
        // A preset pin holds while learning.
        assert!(
            HostKeys::learn(pins)
                .check(target(22), "ssh-ed25519", &b)
                .is_err()
        );
    }

    #[test]
    fn a_credential_s_pin_gives_way_to_known_hosts() {
        let a = STANDARD.decode(BLOB_A).unwrap();
        let b = STANDARD.decode(BLOB_B).unwrap();
        let pinned = HostKeys::learn(Vec::new());
        pinned.check(target(22), "ssh-ed25519", &a).unwrap();
        pinned.check(target(23), "ssh-ed25519", &a).unwrap();
        let pins = pinned.accepted();
        // The operator's file names B for port 22 (A leaked): the pin of A
        // there is not held, B is; port 23, which the file does not name,
        // keeps its pin.
        let known = KnownHosts::parse(&format!("[127.0.0.1]:22 ssh-ed25519 {BLOB_B}\n"));
        let holding = HostKeys::learn_known_holding(&known, [target(22), target(23)], pins);
        assert!(holding.check(target(22), "ssh-ed25519", &a).is_err());
        assert!(holding.check(target(22), "ssh-ed25519", &b).is_ok());
        assert!(holding.check(target(23), "ssh-ed25519", &b).is_err());
        assert!(holding.check(target(23), "ssh-ed25519", &a).is_ok());
    }

    #[test]
    fn a_revoked_key_is_refused_pinned_or_not() {
        let a = STANDARD.decode(BLOB_A).unwrap();
        let known = KnownHosts::parse(&format!(
            "@revoked * ssh-ed25519 {BLOB_A}\n127.0.0.1 ssh-ed25519 {BLOB_A}\n"
        ));
        let pins = known.for_targets([target(22)]);
        assert_eq!(pins.len(), 1);
        for keys in [
            HostKeys::with(Mode::Learn, Vec::new(), &known),
            HostKeys::learn_known(&known, [target(22)]),
            HostKeys::enforce_known(pins, &known),
        ] {
            let refused = keys.check(target(22), "ssh-ed25519", &a);
            assert!(refused.unwrap_err().contains("revoked"));
        }
        let b = STANDARD.decode(BLOB_B).unwrap();
        assert!(
            HostKeys::with(Mode::Learn, Vec::new(), &known)
                .check(target(22), "ssh-ed25519", &b)
                .is_ok()
        );
    }

    #[test]
    fn revoked_pins_are_not_handed_out_and_unreadable_lines_are_counted() {
        let known = KnownHosts::parse(&format!(
            "@revoked * ssh-ed25519 {BLOB_A}\n@revokedX * ssh-ed25519 {BLOB_B}\n\
             127.0.0.1 ssh-ed25519 {BLOB_A}\n127.0.0.1 ssh-ed25519 {BLOB_B}\n\
             # a comment\n127.0.0.2 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI\n127.0.0.3\n"
        ));
        assert_eq!(known.counts().1, 1);
        assert_eq!(known.unreadable(), 2);
        let keys = HostKeys::learn_known(&known, [target(22)]);
        let pinned = keys.pinned(target(22));
        assert_eq!(pinned.len(), 1);
        assert_eq!(
            pinned[0].fingerprint,
            fingerprint(&STANDARD.decode(BLOB_B).unwrap())
        );
    }

    #[test]
    fn an_address_is_matched_however_it_is_spelt() {
        let text = format!(
            "2001:DB8:0:0::1 ssh-ed25519 {BLOB_A}\n[::ffff:127.0.0.1]:2222 ssh-ed25519 {BLOB_B}\n\
             [2001:db8::2]:22 ssh-ed25519 {BLOB_B}\n"
        );
        let known = KnownHosts::parse(&text);
        let at = |ip: &str, port| known.for_targets([SocketAddr::new(ip.parse().unwrap(), port)]);
        assert_eq!(at("2001:db8::1", 22).len(), 1);
        assert_eq!(at("127.0.0.1", 2222).len(), 1);
        assert_eq!(at("2001:db8::2", 22).len(), 1);
        assert!(at("2001:db8::1", 2222).is_empty());
    }

    #[test]
    fn reads_known_hosts_plain_bracketed_and_hashed() {
        // The hashed entry is `[127.0.0.1]:2222` under salt 0x00…00.
        let salt = [0u8; 20];
        let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(&salt).unwrap();
        mac.update(b"[127.0.0.1]:2222");
        let hash = STANDARD.encode(mac.finalize().into_bytes());
        let text = format!(
            "# comment\n127.0.0.1,other ssh-ed25519 {BLOB_A}\n\
             |1|{}|{hash} ssh-ed25519 {BLOB_B}\n\
             @revoked 127.0.0.1 ssh-ed25519 {BLOB_B}\nname.example ssh-ed25519 {BLOB_B}\n\
             broken line\n",
            STANDARD.encode(salt)
        );
        let known = KnownHosts::parse(&text);
        let at_22 = known.for_targets([target(22)]);
        assert_eq!(at_22.len(), 1);
        assert_eq!(
            at_22[0].fingerprint,
            fingerprint(&STANDARD.decode(BLOB_A).unwrap())
        );
        let at_2222 = known.for_targets([target(2222)]);
        assert_eq!(at_2222.len(), 1);
        assert_eq!(
            at_2222[0].fingerprint,
            fingerprint(&STANDARD.decode(BLOB_B).unwrap())
        );
        assert!(known.for_targets([target(2223)]).is_empty());
    }
}
