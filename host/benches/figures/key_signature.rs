//! What one login's signature costs a core, by key type: the reason RSA
//! signatures are made on a blocking thread and the others in place. The
//! same computation as the server's signer (ssh-key's signing, SHA-512 for
//! RSA), on keys `ssh-keygen` makes.

use std::time::{Duration, Instant};

use russh::keys::signature::Signer as _;
use russh::keys::ssh_key::private::KeypairData;
use russh::keys::{HashAlg, PrivateKey};

use super::row;

fn generate(kind: &str, bits: &str) -> PrivateKey {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-b", bits, "-N", "", "-C", "", "-f"])
        .arg(&path)
        .status()
        .expect("ssh-keygen (openssh-client) is installed");
    assert!(made.success());
    russh::keys::decode_secret_key(&std::fs::read_to_string(&path).unwrap(), None).unwrap()
}

/// The median of nine signatures of a userauth-sized message.
fn median_signature(key: &PrivateKey) -> Duration {
    let data = [7u8; 128];
    let mut times: Vec<Duration> = (0..9)
        .map(|_| {
            let started = Instant::now();
            match key.key_data() {
                KeypairData::Rsa(rsa) => (rsa, Some(HashAlg::Sha512)).try_sign(&data).map(drop),
                _ => key.try_sign(&data).map(drop),
            }
            .unwrap();
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

pub fn key_signature() {
    for (kind, bits, name) in [
        ("ed25519", "256", "ed25519"),
        ("ecdsa", "256", "ECDSA P-256"),
        ("ecdsa", "521", "ECDSA P-521"),
        ("rsa", "2048", "RSA-2048"),
        ("rsa", "4096", "RSA-4096"),
        ("rsa", "8192", "RSA-8192"),
    ] {
        let time = median_signature(&generate(kind, bits));
        let value = if time < Duration::from_millis(1) {
            format!("{:.0} µs", time.as_secs_f64() * 1e6)
        } else {
            format!("{:.1} ms", time.as_secs_f64() * 1e3)
        };
        row(&format!("key login signature, {name}, p50"), value, "");
    }
}
