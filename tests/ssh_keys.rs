//! HOST credentials of type `PUBLIC_KEY` against a real sshd with
//! `authorized_keys`: ed25519, ECDSA and RSA keys (OpenSSH and PEM), an
//! encrypted key with its right and a wrong passphrase, a key the server
//! does not know. The key is sealed like a password and never shown: the
//! public part has its type and SHA256 fingerprint only.

mod support;

use serde_json::{Value, json};
use support::server::{Options, Server, err_code, message};
use support::sshd::{self, ClientKey, Sshd};

fn key_body(name: &str, sshd: &Sshd, key: &str, passphrase: &str) -> Value {
    json!({ "target_type": "HOST", "name": name, "ssh_credential_property": {
        "targets": [{ "ip": "127.0.0.1", "port": sshd.addr.port() }],
        "username": sshd::USER, "type": "PUBLIC_KEY",
        "private_key": key, "passphrase": passphrase } })
}

#[tokio::test]
async fn key_logins_prove_and_the_key_is_never_shown() {
    let ed25519 = ClientKey::generate("ed25519", "", false);
    let ecdsa = ClientKey::generate("ecdsa", "", false);
    let rsa_pem = ClientKey::generate("rsa", "", true);
    let encrypted = ClientKey::generate("ed25519", "key-pass-77", false);
    let stranger = ClientKey::generate("ed25519", "", false);
    let sshd = Sshd::start_with_keys(&[
        ed25519.public_line.clone(),
        ecdsa.public_line.clone(),
        rsa_pem.public_line.clone(),
        encrypted.public_line.clone(),
    ]);
    let server = Server::start(Options::default());

    let mut ids = Vec::new();
    for (i, (key, passphrase, kind)) in [
        (&ed25519, "", "ssh-ed25519"),
        (&ecdsa, "", "ecdsa-sha2-nistp256"),
        (&rsa_pem, "", "ssh-rsa"),
        (&encrypted, "key-pass-77", "ssh-ed25519"),
    ]
    .into_iter()
    .enumerate()
    {
        let (status, created) = server
            .post(
                "/api/v1/security/credential",
                key_body(&format!("k{i}"), &sshd, &key.private, passphrase),
            )
            .await;
        assert_eq!(status, 200, "{kind}: {created}");
        let public = &created["data"]["ssh_secret"];
        assert_eq!(public["type"], "PUBLIC_KEY");
        assert_eq!(public["key_type"], kind);
        assert_eq!(public["key_fingerprint"], key.fingerprint.as_str());
        assert!(public.get("private_key").is_none() && public.get("passphrase").is_none());
        ids.push(created["data"]["credential_id"].as_u64().unwrap());
        // The uniqueness of (type, ip) allows one credential per host: the
        // next key gets its own name but the host must be free again.
        let (status, _) = server
            .delete(&format!("/api/v1/security/credential/{}", ids[i]), None)
            .await;
        assert_eq!(status, 200);
    }

    // A key the server does not know: refused by the server, nothing stored.
    let (status, envelope) = server
        .post(
            "/api/v1/security/credential",
            key_body("stranger", &sshd, &stranger.private, ""),
        )
        .await;
    assert_eq!(status, 400, "{envelope}");
    assert_eq!(err_code(&envelope), "Credential.SSH.ValidationFailed");
    assert!(message(&envelope).contains("AUTH_FAILED"), "{envelope}");

    // An encrypted key: a wrong passphrase, or none, is refused at once.
    for passphrase in ["wrong", ""] {
        let (status, envelope) = server
            .post(
                "/api/v1/security/credential",
                key_body("locked", &sshd, &encrypted.private, passphrase),
            )
            .await;
        assert_eq!(status, 400, "{envelope}");
        assert_eq!(err_code(&envelope), "Common.IllegalArgument");
        assert!(
            message(&envelope).contains("private key cannot be read"),
            "{envelope}"
        );
    }
    // Garbage instead of a key.
    let (status, envelope) = server
        .post(
            "/api/v1/security/credential",
            key_body("junk", &sshd, "not a key", ""),
        )
        .await;
    assert_eq!(status, 400, "{envelope}");

    // Stored: it validates, an update without the key keeps it (and its
    // fingerprint), and the key is nowhere in the answers or the database.
    let (status, created) = server
        .post(
            "/api/v1/security/credential",
            key_body("kept", &sshd, &encrypted.private, "key-pass-77"),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let id = created["data"]["credential_id"].as_u64().unwrap();
    assert_eq!(
        server.validate_stored(id).await["connection_result"],
        "SUCCESS"
    );
    let mut keep = key_body("kept-renamed", &sshd, "", "");
    keep["description"] = "the key stays".into();
    let (status, updated) = server
        .patch(&format!("/api/v1/security/credential/{id}"), keep)
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        updated["data"]["ssh_secret"]["key_fingerprint"],
        encrypted.fingerprint.as_str()
    );
    assert_eq!(
        server.validate_stored(id).await["connection_result"],
        "SUCCESS"
    );
    let (_, got) = server
        .get(&format!("/api/v1/security/credential/{id}"))
        .await;
    let text = got.to_string();
    let body_line = encrypted.private.lines().nth(1).unwrap();
    assert!(!text.contains(body_line) && !text.contains("key-pass-77"));
    let database = std::fs::read(server.data_dir().join("credhost.redb")).unwrap();
    for secret in [body_line, "key-pass-77"] {
        assert!(
            !database
                .windows(secret.len())
                .any(|w| w == secret.as_bytes()),
            "{secret:?} is in the database in clear"
        );
    }
    // Switching to a password needs the password.
    let mut switch = key_body("kept-renamed", &sshd, "", "");
    switch["ssh_credential_property"]["type"] = "PASSWORD".into();
    let (status, envelope) = server
        .patch(&format!("/api/v1/security/credential/{id}"), switch)
        .await;
    assert_eq!(status, 400, "{envelope}");
    // PASSWORD stays as obshell has it beside keys.
    let (status, password) = server
        .post(
            "/api/v1/security/credential/validate",
            json!({ "target_type": "HOST", "ssh_credential_property": {
                "targets": [{ "ip": "127.0.0.1", "port": sshd.addr.port() }],
                "username": sshd::USER, "type": "PASSWORD", "passphrase": sshd::PASSWORD } }),
        )
        .await;
    assert_eq!(status, 200, "{password}");
    assert_eq!(
        password["data"]["details"][0]["connection_result"],
        "SUCCESS"
    );
}

/// An encrypted key names what its decryption costs. Keys asking for hours
/// of CPU or gigabytes of memory (a PuTTY key's Argon2, an OpenSSH key's
/// bcrypt rounds, a PKCS#8 key's PBKDF2 iterations or scrypt parameters)
/// are refused before any derivation, in words that quote none of the key;
/// an ordinary encrypted PKCS#8 key still reads and logs in.
#[tokio::test]
async fn keys_that_would_cost_the_server_hours_are_refused_unread() {
    let ecdsa = ClientKey::generate("ecdsa", "", true);
    let sshd = Sshd::start_with_keys(std::slice::from_ref(&ecdsa.public_line));
    let server = Server::start(Options::default());
    let create = |name: &str, key: &str, passphrase: &str| {
        server.post(
            "/api/v1/security/credential",
            key_body(name, &sshd, key, passphrase),
        )
    };

    let putty = "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: aes256-cbc\n\
                 Comment: x\nPublic-Lines: 1\nAAAAC3NzaC1lZDI1NTE5AAAAIA==\n\
                 Key-Derivation: Argon2id\nArgon2-Memory: 2097152\n\
                 Argon2-Passes: 4294967295\nArgon2-Parallelism: 1\n\
                 Argon2-Salt: 00112233445566778899aabbccddeeff\n\
                 Private-Lines: 0\nAAAAIPRIVATEKEYLINE\nPrivate-MAC: 00\n";
    let bcrypt = with_bcrypt_rounds(
        &ClientKey::generate("ed25519", "pw", false).private,
        4_000_000_000,
    );
    let pbkdf2 = openssl_pkcs8(&ecdsa.private, &["-v2", "aes-256-cbc", "-iter", "1000001"]);
    let scrypt = openssl_pkcs8(
        &ecdsa.private,
        &[
            "-scrypt",
            "-scrypt_N",
            "16384",
            "-scrypt_r",
            "8",
            "-scrypt_p",
            "16",
        ],
    );
    // The label is not trusted: russh reads encrypted PKCS#8 bytes under
    // a plain one too.
    let relabelled = pbkdf2.replace("ENCRYPTED PRIVATE KEY", "PRIVATE KEY");
    for (name, key, says) in [
        ("putty", putty.to_string(), "PuTTY keys are not read"),
        ("relabelled", relabelled, "1000001 PBKDF2 iterations"),
        ("bcrypt", bcrypt, "4000000000 bcrypt rounds"),
        ("pbkdf2", pbkdf2, "1000001 PBKDF2 iterations"),
        ("scrypt", scrypt, "scrypt with N=16384, r=8, p=16"),
    ] {
        let (status, envelope) = create(name, &key, "pw").await;
        assert_eq!(status, 400, "{name}: {envelope}");
        assert_eq!(err_code(&envelope), "Common.IllegalArgument", "{envelope}");
        assert!(message(&envelope).contains(says), "{name}: {envelope}");
        assert!(!envelope.to_string().contains("PRIVATEKEYLINE"));
    }
    assert!(!server.log_text().contains("PRIVATEKEYLINE"));

    // OpenSSL's own defaults (PBKDF2, 2,048 iterations) read as before.
    let ordinary = openssl_pkcs8(&ecdsa.private, &["-v2", "aes-256-cbc"]);
    let (status, created) = create("ordinary", &ordinary, "pw").await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(
        created["data"]["ssh_secret"]["key_fingerprint"],
        ecdsa.fingerprint.as_str()
    );
}

/// `key` (an encrypted OpenSSH key) with its bcrypt rounds set to `rounds`;
/// nothing else changes, so nothing but the rounds can refuse it.
fn with_bcrypt_rounds(key: &str, rounds: u32) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut bytes = b64.decode(body).unwrap();
    let u32_at =
        |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as usize;
    // "openssh-key-v1\0", then the cipher's name, the KDF's name, the
    // KDF options' length, and in them the salt before the rounds.
    let mut at = b"openssh-key-v1\0".len();
    at += 4 + u32_at(&bytes, at);
    assert_eq!(&bytes[at + 4..at + 4 + u32_at(&bytes, at)], b"bcrypt");
    at += 4 + u32_at(&bytes, at);
    at += 4;
    at += 4 + u32_at(&bytes, at);
    bytes[at..at + 4].copy_from_slice(&rounds.to_be_bytes());
    let encoded = b64.encode(bytes);
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(70)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

/// `key` (PEM) as an encrypted PKCS#8 key under the passphrase `pw`, made
/// by `openssl pkcs8 -topk8` with `args`.
fn openssl_pkcs8(key: &str, args: &[&str]) -> String {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new("openssl")
        .args(["pkcs8", "-topk8", "-passout", "pass:pw"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(key.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl pkcs8 {args:?}");
    String::from_utf8(out.stdout).unwrap()
}
