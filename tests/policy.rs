//! The embedded AES-256-GCM policy: round trip, and every kind of tampering
//! is an error, never garbage.

mod support;

use credhost::plugins::{PolicyPlugin, Registry, SealError};
use credhost::secret::Secret;

async fn registry() -> Registry {
    let runtime = support::runtime(support::quick_ssh()).await;
    support::registry(&runtime, None, &[]).await
}

fn policy(registry: &Registry) -> &PolicyPlugin {
    registry
        .policy("aes-256-gcm")
        .expect("aes-256-gcm is embedded")
}

fn key(byte: u8) -> Secret {
    Secret::new(vec![byte; 32])
}

#[tokio::test]
async fn describes_itself() {
    let registry = registry().await;
    let info = &policy(&registry).info;
    assert_eq!(
        (info.name.as_str(), info.algorithm.as_str(), info.key_length),
        ("aes-256-gcm", "AES-256-GCM", 32)
    );
}

#[tokio::test]
async fn round_trips_with_a_fresh_nonce_each_time() {
    let registry = registry().await;
    let p = policy(&registry);
    let secret = Secret::new(b"P@ssw0rd".to_vec());
    let a = p.seal(&key(1), &secret, b"credential:7").await.unwrap();
    let b = p.seal(&key(1), &secret, b"credential:7").await.unwrap();
    assert_ne!(a, b, "two seals of one secret must differ");
    assert!(!a.windows(8).any(|w| w == b"P@ssw0rd"));
    assert_eq!(p.open(&key(1), &a, b"credential:7").await.unwrap(), secret);
    assert_eq!(p.open(&key(1), &b, b"credential:7").await.unwrap(), secret);
    let empty = p
        .seal(&key(1), &Secret::new(Vec::new()), b"")
        .await
        .unwrap();
    assert!(p.open(&key(1), &empty, b"").await.unwrap().is_empty());
}

#[tokio::test]
async fn tampering_a_wrong_key_or_wrong_aad_is_an_error() {
    let registry = registry().await;
    let p = policy(&registry);
    let sealed = p
        .seal(&key(1), &Secret::new(b"P@ssw0rd".to_vec()), b"credential:7")
        .await
        .unwrap();
    for i in [0, 12, sealed.len() - 1] {
        let mut tampered = sealed.clone();
        tampered[i] ^= 1;
        assert!(
            matches!(
                p.open(&key(1), &tampered, b"credential:7").await,
                Err(SealError::Refused(_))
            ),
            "byte {i}"
        );
    }
    assert!(matches!(
        p.open(&key(2), &sealed, b"credential:7").await,
        Err(SealError::Refused(_))
    ));
    assert!(matches!(
        p.open(&key(1), &sealed, b"credential:8").await,
        Err(SealError::Refused(_))
    ));
    assert!(matches!(
        p.open(&key(1), &sealed[..20], b"credential:7").await,
        Err(SealError::Refused(_))
    ));
    let short_key = Secret::new(vec![1; 16]);
    assert!(matches!(
        p.seal(&short_key, &Secret::new(vec![1]), b"").await,
        Err(SealError::Refused(_))
    ));
}
