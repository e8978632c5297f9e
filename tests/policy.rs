//! The embedded policies (AES-256-GCM, ChaCha20-Poly1305): round trip, and
//! every kind of tampering is an error, never garbage.

mod support;

use credhost::budget::Client;
use credhost::plugins::{PolicyPlugin, Registry, SealError};
use credhost::secret::Secret;

async fn registry() -> Registry {
    let runtime = support::runtime(support::quick_ssh()).await;
    support::registry(&runtime, None, &[]).await
}

const POLICIES: [&str; 2] = ["aes-256-gcm", "chacha20-poly1305"];

fn policy<'a>(registry: &'a Registry, name: &str) -> &'a PolicyPlugin {
    registry
        .policy(name)
        .unwrap_or_else(|| panic!("{name} is embedded"))
}

fn key(byte: u8) -> Secret {
    Secret::new(vec![byte; 32])
}

#[tokio::test]
async fn describes_itself() {
    let registry = registry().await;
    let info = &policy(&registry, "aes-256-gcm").info;
    assert_eq!(
        (info.name.as_str(), info.algorithm.as_str(), info.key_length),
        ("aes-256-gcm", "AES-256-GCM", 32)
    );
    let info = &policy(&registry, "chacha20-poly1305").info;
    assert_eq!(
        (info.algorithm.as_str(), info.key_length),
        ("ChaCha20-Poly1305", 32)
    );
}

#[tokio::test]
async fn round_trips_with_a_fresh_nonce_each_time() {
    let registry = registry().await;
    for name in POLICIES {
        let p = policy(&registry, name);
        let secret = Secret::new(b"P@ssw0rd".to_vec());
        let a = p
            .seal(&Client::server(), &key(1), &secret, b"credential:7")
            .await
            .unwrap();
        let b = p
            .seal(&Client::server(), &key(1), &secret, b"credential:7")
            .await
            .unwrap();
        assert_ne!(a, b, "two seals of one secret must differ");
        assert!(!a.windows(8).any(|w| w == b"P@ssw0rd"));
        assert_eq!(
            p.open(&Client::server(), &key(1), &a, b"credential:7")
                .await
                .unwrap(),
            secret
        );
        assert_eq!(
            p.open(&Client::server(), &key(1), &b, b"credential:7")
                .await
                .unwrap(),
            secret
        );
        let empty = p
            .seal(&Client::server(), &key(1), &Secret::new(Vec::new()), b"")
            .await
            .unwrap();
        assert!(
            p.open(&Client::server(), &key(1), &empty, b"")
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn tampering_a_wrong_key_or_wrong_aad_is_an_error() {
    let registry = registry().await;
    for name in POLICIES {
        let p = policy(&registry, name);
        let sealed = p
            .seal(
                &Client::server(),
                &key(1),
                &Secret::new(b"P@ssw0rd".to_vec()),
                b"credential:7",
            )
            .await
            .unwrap();
        for i in [0, 12, sealed.len() - 1] {
            let mut tampered = sealed.clone();
            tampered[i] ^= 1;
            assert!(
                matches!(
                    p.open(&Client::server(), &key(1), &tampered, b"credential:7")
                        .await,
                    Err(SealError::Refused(_))
                ),
                "byte {i}"
            );
        }
        assert!(matches!(
            p.open(&Client::server(), &key(2), &sealed, b"credential:7")
                .await,
            Err(SealError::Refused(_))
        ));
        assert!(matches!(
            p.open(&Client::server(), &key(1), &sealed, b"credential:8")
                .await,
            Err(SealError::Refused(_))
        ));
        assert!(matches!(
            p.open(&Client::server(), &key(1), &sealed[..20], b"credential:7")
                .await,
            Err(SealError::Refused(_))
        ));
        // A key of another length is never handed over as it is: the host
        // derives one of the policy's own length from it (HKDF-SHA256).
        let short_key = Secret::new(vec![1; 16]);
        let sealed = p
            .seal(&Client::server(), &short_key, &Secret::new(vec![1]), b"")
            .await
            .unwrap();
        assert_eq!(
            p.open(&Client::server(), &short_key, &sealed, b"")
                .await
                .unwrap()
                .expose(),
            &[1]
        );
        assert!(matches!(
            p.open(&Client::server(), &Secret::new(vec![2; 16]), &sealed, b"")
                .await,
            Err(SealError::Refused(_))
        ));
    }
}

#[tokio::test]
async fn one_policy_cannot_open_the_other() {
    let registry = registry().await;
    let secret = Secret::new(b"P@ssw0rd".to_vec());
    let sealed = policy(&registry, "aes-256-gcm")
        .seal(&Client::server(), &key(1), &secret, b"a")
        .await
        .unwrap();
    assert!(
        policy(&registry, "chacha20-poly1305")
            .open(&Client::server(), &key(1), &sealed, b"a")
            .await
            .is_err()
    );
}
