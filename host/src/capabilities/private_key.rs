//! Private keys sent for key logins, read with russh once nothing in them
//! can make reading one a weapon. An encrypted key names the cost of its
//! own key derivation (bcrypt rounds, PBKDF2 iterations, scrypt's N, r and
//! p, PuTTY's Argon2 memory and passes), and the reading runs on a blocking
//! thread that nothing cancels: so a key asking for more than a careful
//! user's key ever does is refused before any derivation, and only a few
//! keys are read at once.
//!
//! Messages are fixed texts: a parser's own error may quote the key.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use data_encoding::BASE64_MIME;
use pkcs8::pkcs5::EncryptionScheme;
use pkcs8::pkcs5::pbes2::Kdf;
use russh::keys::ssh_key::{self, public::KeyData};
use russh::keys::{HashAlg, PrivateKey};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use zeroize::Zeroizing;

use crate::budget::{Budget, Client};

/// Longer than any ed25519, ECDSA or 8,192-bit RSA key in any format.
const MAX_TEXT_BYTES: usize = 16 * 1024;
/// `ssh-keygen -a`: 16 by default, 100 where hardening guides ask; about
/// 10 ms a round on one core.
const MAX_BCRYPT_ROUNDS: u32 = 256;
/// PKCS#8 PBKDF2: OpenSSL writes 2,048, current advice is 600,000.
const MAX_PBKDF2_ITERATIONS: u32 = 1_000_000;
/// PKCS#8 scrypt: N·r·p (OpenSSL writes 2^14·8·1 = 2^17).
const MAX_SCRYPT_WORK: u64 = 1 << 20;
/// PKCS#8 scrypt memory: its two buffers, 128·r·N and 128·r·p bytes.
const MAX_SCRYPT_MEMORY: u64 = 64 << 20;
/// Larger RSA keys make every login's signature slow.
const MAX_RSA_BITS: usize = 8192;

/// CPU-heavy key work, in two queues. Each runs one piece per core, so
/// the async workers keep a share of the CPU, and one client holds at most
/// half of them, so a client sending costly keys slows its own requests,
/// not everyone's. The queues are apart, so a login whose key is already
/// read never waits behind other keys' reads.
#[derive(Clone, Copy)]
pub(super) enum KeyWork {
    /// Decrypting a key: a second or two at the limits below.
    Read,
    /// An RSA signature: 1.4 ms at 2,048 bits, 74 ms at 8,192
    /// (`cargo bench -p credhost -- key_signature`).
    Sign,
}

/// Longer than any call that reads or signs may run: the call's own
/// deadline ends the wait first.
const KEY_WORK_WAIT: Duration = Duration::from_secs(300);

fn one_per_core(pool: &'static str, what: &'static str) -> Budget {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Budget::new(pool, what, cores, cores / 2, KEY_WORK_WAIT)
}

static READS: LazyLock<Budget> = LazyLock::new(|| one_per_core("key_read", "key reading slot"));
static SIGNATURES: LazyLock<Budget> =
    LazyLock::new(|| one_per_core("key_sign", "key signing slot"));

/// Runs `work` for `client` on the blocking pool through its queue. The
/// work goes on to the end when the caller stops waiting; so does its hold
/// on a slot. An error if no slot came free or the work panicked.
pub(super) async fn off_thread<T: Send + 'static>(
    queue: KeyWork,
    client: &Client,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let slots = match queue {
        KeyWork::Read => &READS,
        KeyWork::Sign => &SIGNATURES,
    };
    let slot = slots
        .acquire(client)
        .await
        .map_err(|busy| busy.to_string())?;
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        work()
    })
    .await
    .map_err(|_| "the key work failed".to_string())
}

/// Reads an OpenSSH or PEM private key (ed25519, ECDSA or RSA), decrypting
/// it with `passphrase`.
fn read(text: &str, passphrase: Option<&str>) -> Result<PrivateKey, String> {
    #[cfg(test)]
    tests::READ.lock().unwrap().push(name(text, passphrase));
    check_cost(text)?;
    let key = russh::keys::decode_secret_key(text, passphrase).map_err(|e| {
        match e {
            russh::keys::Error::KeyIsEncrypted => "the key is encrypted: give its passphrase",
            russh::keys::Error::UnsupportedKeyType { .. }
            | russh::keys::Error::UnknownAlgorithm(_) => {
                "the key's type is not supported (ed25519, ECDSA or RSA)"
            }
            _ => "not an OpenSSH or PEM private key, or the passphrase does not open it",
        }
        .to_string()
    })?;
    if let KeyData::Rsa(rsa) = key.public_key().key_data() {
        let bits = rsa.n().as_positive_bytes().map_or(0, |n| n.len() * 8);
        if bits > MAX_RSA_BITS {
            return Err(format!(
                "RSA keys of more than {MAX_RSA_BITS} bits are not used"
            ));
        }
    }
    Ok(key)
}

/// [`read`] off the async threads.
async fn read_off_thread(
    client: &Client,
    text: Zeroizing<String>,
    passphrase: Option<Zeroizing<String>>,
) -> Result<PrivateKey, String> {
    off_thread(KeyWork::Read, client, move || {
        read(&text, passphrase.as_ref().map(|p| p.as_str()))
    })
    .await
    .and_then(|read| read)
}

/// What reading one key came to, shared by everyone who asked for it.
type Reading = Arc<OnceCell<Result<Arc<PrivateKey>, String>>>;

/// Keys read during one verification, shared by the calls for its targets:
/// a credential's key is decrypted once, not once per target, and calls
/// that ask at the same moment wait for the one reading. Entries are named
/// by a hash of the key's text and passphrase, and go with the verification.
#[derive(Clone, Default)]
pub struct KeyCache(Arc<Mutex<HashMap<[u8; 32], Reading>>>);

/// Keys (text and passphrase) one verification may read: a credential has
/// one, and a plugin asking for key after key (a passphrase an unencrypted
/// key ignores makes each ask another entry) would have the host parse and
/// hold each until the verification ends.
pub const MAX_KEYS_PER_VERIFICATION: usize = 4;

/// Nothing of a key is shown.
impl fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyCache")
    }
}

impl KeyCache {
    /// The key `text` opens to with `passphrase`, read at most once (for
    /// `client`, whose share of the reading slots it takes). Both are wiped
    /// once read.
    pub async fn read(
        &self,
        client: &Client,
        text: Zeroizing<String>,
        passphrase: Option<Zeroizing<String>>,
    ) -> Result<Arc<PrivateKey>, String> {
        // Before anything else: a text too long to be a key takes no slot.
        too_long(&text)?;
        let reading = {
            let mut cache = self.0.lock().expect("key cache lock");
            let name = name(&text, passphrase.as_ref().map(|p| p.as_str()));
            if !cache.contains_key(&name) && cache.len() >= MAX_KEYS_PER_VERIFICATION {
                return Err(format!(
                    "one verification reads at most {MAX_KEYS_PER_VERIFICATION} keys"
                ));
            }
            cache.entry(name).or_default().clone()
        };
        reading
            .get_or_init(|| async move {
                read_off_thread(client, text, passphrase)
                    .await
                    .map(Arc::new)
            })
            .await
            .clone()
    }
}

/// A key's name in the cache: text and passphrase, each framed so no two
/// pairs run together.
fn name(text: &str, passphrase: Option<&str>) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update((text.len() as u64).to_le_bytes());
    hash.update(text);
    match passphrase {
        Some(passphrase) => {
            hash.update([1]);
            hash.update(passphrase);
        }
        None => hash.update([0]),
    }
    hash.finalize().into()
}

/// The key's algorithm and its `SHA256:` fingerprint, as OpenSSH prints them.
pub fn fingerprint(key: &PrivateKey) -> (String, String) {
    let public = key.public_key();
    (
        public.algorithm().as_str().to_string(),
        public.fingerprint(HashAlg::Sha256).to_string(),
    )
}

/// Refuses a key whose derivation would cost more than the limits above,
/// before russh derives anything. The text is taken apart as russh takes it
/// (the base64 lines of the first block), and its bytes are checked both as
/// an OpenSSH key and as an encrypted PKCS#8 one, whatever the block says.
fn check_cost(text: &str) -> Result<(), String> {
    too_long(text)?;
    if text.trim().starts_with("PuTTY-User-Key-File-") {
        return Err("PuTTY keys are not read: convert it to OpenSSH's format \
             (puttygen KEY -O private-openssh)"
            .into());
    }
    let Some(bytes) = first_block(text) else {
        // russh reads nothing else, and refuses it.
        return Ok(());
    };
    if let Ok(key) = ssh_key::PrivateKey::from_bytes(&bytes)
        && let ssh_key::Kdf::Bcrypt { rounds, .. } = key.kdf()
        && *rounds > MAX_BCRYPT_ROUNDS
    {
        return Err(format!(
            "the key asks for {rounds} bcrypt rounds; at most {MAX_BCRYPT_ROUNDS} are done"
        ));
    }
    if let Ok(info) = pkcs8::EncryptedPrivateKeyInfoRef::try_from(bytes.as_slice()) {
        let EncryptionScheme::Pbes2(scheme) = info.encryption_algorithm else {
            return Err("the key is encrypted with PBES1: re-encrypt it with PBES2".into());
        };
        match scheme.kdf {
            Kdf::Pbkdf2(p) if p.iteration_count > MAX_PBKDF2_ITERATIONS => {
                return Err(format!(
                    "the key asks for {} PBKDF2 iterations; at most {MAX_PBKDF2_ITERATIONS} are done",
                    p.iteration_count
                ));
            }
            Kdf::Scrypt(s) => {
                let (n, r, p) = (
                    s.cost_parameter,
                    u64::from(s.block_size),
                    u64::from(s.parallelization),
                );
                let work = n.saturating_mul(r).saturating_mul(p);
                let memory = n.saturating_add(p).saturating_mul(r).saturating_mul(128);
                if work > MAX_SCRYPT_WORK || memory > MAX_SCRYPT_MEMORY {
                    return Err(format!(
                        "the key asks for scrypt with N={n}, r={r}, p={p}: more than is done"
                    ));
                }
            }
            Kdf::Pbkdf2(_) => {}
            // One this code has not been taught to price.
            _ => return Err("the key's encryption is not read".into()),
        }
    }
    Ok(())
}

fn too_long(text: &str) -> Result<(), String> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(format!("the key is longer than {MAX_TEXT_BYTES} bytes"));
    }
    Ok(())
}

/// The labels russh starts reading at.
const LABELS: [&str; 5] = [
    "-----BEGIN OPENSSH PRIVATE KEY-----",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----BEGIN ENCRYPTED PRIVATE KEY-----",
    "-----BEGIN PRIVATE KEY-----",
    "-----BEGIN EC PRIVATE KEY-----",
];

/// The bytes russh reads: the base64 lines after the first label it knows,
/// up to the next `-----END `.
fn first_block(text: &str) -> Option<Vec<u8>> {
    let mut lines = text.lines().skip_while(|l| !LABELS.contains(l));
    lines.next()?;
    let base64: String = lines
        .take_while(|l| !l.starts_with("-----END "))
        .filter(|l| {
            l.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
        })
        .collect();
    BASE64_MIME.decode(base64.as_bytes()).ok()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The names of the keys read (or refused) so far by this test binary.
    pub(super) static READ: Mutex<Vec<[u8; 32]>> = Mutex::new(Vec::new());

    /// The reading slots are the process's: tests that count on them take
    /// turns.
    static SLOTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_verification_reads_each_key_once_whoever_asks() {
        let _turn = SLOTS.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let text = keygen(dir.path(), "key", "ed25519", "pass");
        let cache = KeyCache::default();
        let ops = Client::new("ops");
        let reads = || {
            let read = READ.lock().unwrap();
            let of = |p: &str| read.iter().filter(|n| **n == name(&text, Some(p))).count();
            (of("pass"), of("wrong"))
        };
        // `cache` asked for the key with `passphrase`.
        fn read<'a>(
            cache: &'a KeyCache,
            ops: &'a Client,
            text: &str,
            passphrase: &str,
        ) -> impl Future<Output = Result<Arc<PrivateKey>, String>> + 'a {
            cache.read(
                ops,
                Zeroizing::new(text.to_string()),
                Some(Zeroizing::new(passphrase.into())),
            )
        }
        let read = |cache, passphrase| read(cache, &ops, &text, passphrase);
        // Eight targets ask at once, then two more; a wrong passphrase is
        // another key.
        let keys = futures::future::join_all((0..8).map(|_| read(&cache, "pass"))).await;
        let first = keys[0].as_ref().unwrap();
        assert!(keys.iter().all(|k| Arc::ptr_eq(k.as_ref().unwrap(), first)));
        assert!(read(&cache, "pass").await.is_ok());
        assert!(read(&cache, "wrong").await.is_err());
        assert!(read(&cache, "wrong").await.is_err());
        assert_eq!(reads(), (1, 1), "one reading per key and passphrase");
        // Two more passphrases make four keys; a fifth is not read at all.
        for other in ["other-1", "other-2"] {
            let _ = read(&cache, other).await;
        }
        let fifth = read(&cache, "other-3").await.unwrap_err();
        assert!(fifth.contains("at most 4 keys"), "{fifth}");
        assert!(!READ.lock().unwrap().contains(&name(&text, Some("other-3"))));
        // A key read already is still there.
        assert!(read(&cache, "pass").await.is_ok());
        // Another verification reads afresh.
        assert!(read(&KeyCache::default(), "pass").await.is_ok());
        assert_eq!(reads(), (2, 1));
    }

    /// The text of a fresh `ssh-keygen` key of `kind` (its default size).
    pub(in crate::capabilities) fn keygen(
        dir: &std::path::Path,
        name: &str,
        kind: &str,
        passphrase: &str,
    ) -> String {
        let path = dir.join(name);
        let made = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-N", passphrase, "-C", "", "-f"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        std::fs::read_to_string(&path).unwrap()
    }

    /// A client holds at most half the reading slots however many reads it
    /// queues (here, one per core that never ends until released), and
    /// another client's key is read beside them while any slot is left.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_client_cannot_take_every_reading_slot() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let _turn = SLOTS.lock().await;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let share = (cores / 2).max(1);
        let running = Arc::new(AtomicUsize::new(0));
        let greedy = Client::new("greedy");
        let mut releases = Vec::new();
        let held: Vec<_> = (0..cores)
            .map(|_| {
                let (release, wait) = std::sync::mpsc::channel::<()>();
                releases.push(release);
                let (greedy, running) = (greedy.clone(), running.clone());
                tokio::spawn(async move {
                    off_thread(KeyWork::Read, &greedy, move || {
                        running.fetch_add(1, SeqCst);
                        let _ = wait.recv();
                    })
                    .await
                })
            })
            .collect();
        let started = std::time::Instant::now();
        while running.load(SeqCst) < share {
            assert!(started.elapsed() < Duration::from_secs(10), "never started");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let dir = tempfile::tempdir().unwrap();
        let plain = keygen(dir.path(), "plain", "ed25519", "");
        let (cache, other) = (KeyCache::default(), Client::new("other"));
        let read = cache.read(&other, Zeroizing::new(plain), None);
        let served = tokio::time::timeout(Duration::from_secs(10), read).await;
        assert_eq!(running.load(SeqCst), share, "the greedy client took more");
        assert_eq!(served.is_ok(), cores > share, "cores: {cores}");
        assert!(served.is_err() || served.unwrap().is_ok());
        drop(releases);
        for held in held {
            assert!(held.await.unwrap().is_ok());
        }
    }

    #[test]
    fn a_putty_key_is_refused_without_quoting_it() {
        let text = "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: aes256-cbc\n\
                    Key-Derivation: Argon2id\nArgon2-Memory: 2097152\n\
                    Argon2-Passes: 4294967295\nPrivate-Lines: 0\nAAAAIPRIVATEKEYLINE";
        let why = read(text, Some("x")).unwrap_err();
        assert!(why.contains("PuTTY"), "{why}");
        assert!(!why.contains("AAAAI"), "{why}");
    }

    #[test]
    fn an_unreadable_key_is_refused_in_fixed_words() {
        let text = "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n\
                    -----END OPENSSH PRIVATE KEY-----\n";
        let why = read(text, None).unwrap_err();
        assert_eq!(
            why,
            "not an OpenSSH or PEM private key, or the passphrase does not open it"
        );
        let long = "A".repeat(MAX_TEXT_BYTES + 1);
        assert!(read(&long, None).unwrap_err().contains("longer than"));
    }
}
