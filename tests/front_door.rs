//! The front door tried as an attacker would, against the real binary: each
//! test performs an attack that worked before the API was hardened, and
//! asserts it no longer does.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use credhost::client::{Client, Sealed, encrypt_header};
use reqwest::Method;
use serde_json::{Value, json};
use support::server::{Options, Server, err_code, message, refused_at_start};

const PASSWORD: &str = "Front-door-pw-5512";

type Headers = Vec<(&'static str, &'static str)>;
const LIST: &str = "/api/v1/security/credentials";
const ROTATE: &str = "/api/v1/security/keys/rotate";
const ENCRYPTION: &str = "/api/v1/security/encryption";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn with_password(config: &str) -> Server {
    Server::start(Options {
        envs: vec![("CREDHOST_PASSWORD".into(), PASSWORD.into())],
        config: Some(config.into()),
        ..Default::default()
    })
}

/// The header JSON exactly as the obshell SDK writes it.
fn sdk_header_json(auth: &str, ts: u64, uri: &str, keys: &str) -> String {
    format!(r#"{{"auth": "{auth}", "ts": "{ts}", "uri": "{uri}", "keys": "{keys}"}}"#)
}

fn blocks_of(header: &str) -> Vec<Vec<u8>> {
    STANDARD
        .decode(header)
        .unwrap()
        .chunks(256)
        .map(<[u8]>::to_vec)
        .collect()
}

fn header_of(blocks: &[Vec<u8>]) -> String {
    STANDARD.encode(blocks.concat())
}

async fn current_key(client: &Client) -> Value {
    let (status, envelope) = client.call(Method::GET, ENCRYPTION, None).await.unwrap();
    assert_eq!(status, 200, "{envelope}");
    envelope["data"]["current_key_id"].clone()
}

/// 1. A captured SDK header's blocks that hold the password, followed by
/// blocks of the attacker's own that close the JSON with their own `uri`,
/// `ts` and `keys` (duplicates, last one winning), or with extra keys.
#[tokio::test]
async fn a_captured_header_cannot_be_recombined_into_a_forged_request() {
    let server = with_password("");
    let client = Client::connect(&server.base, PASSWORD).await.unwrap();
    let key_before = current_key(&client).await;
    let public = client.public_key().clone();

    // What the attacker saw: one SDK request (53-byte chunks).
    let keys = STANDARD.encode([7u8; 32]);
    let captured = encrypt_header(
        &public,
        sdk_header_json(PASSWORD, now() + 60, LIST, &keys).as_bytes(),
        53,
    );
    let captured = blocks_of(&captured);
    assert!(captured.len() >= 3);

    // All but the last block (which closes the `keys` string and the
    // object), then blocks that end the string and override the rest.
    let tails = [
        format!(
            r#"", "uri": "{ROTATE}", "ts": "{}", "keys": "{}"}}"#,
            now() + 60,
            STANDARD.encode([9u8; 32])
        ),
        format!(r#"", "URI": "{ROTATE}"}}"#),
        format!(r#"", "session_id": "x", "uri2": "{ROTATE}"}}"#),
    ];
    for tail in tails {
        let mut forged = captured[..captured.len() - 1].to_vec();
        forged.extend(blocks_of(&encrypt_header(&public, tail.as_bytes(), 53)));
        let sealed = Sealed {
            header: header_of(&forged),
            body: None,
        };
        let (status, envelope) = client.send(Method::POST, ROTATE, &sealed).await.unwrap();
        assert_eq!(
            (status, err_code(&envelope)),
            (401, "Security.Authentication.Header.DecryptFailed"),
            "{tail}"
        );
    }
    assert_eq!(
        current_key(&client).await,
        key_before,
        "no rotation happened"
    );
}

/// 2. Bleichenbacher's oracle: a block with bad padding and one with good
/// padding but content that is not the header must be answered alike, and
/// an address that keeps failing is stopped before any decryption.
#[tokio::test]
async fn bad_padding_and_bad_content_get_one_answer_and_failures_are_limited() {
    let server = with_password("[http]\nauth_failure_burst = 6\nauth_failures_per_minute = 1\n");
    let client = Client::connect(&server.base, PASSWORD).await.unwrap();
    let public = client.public_key().clone();

    let good_padding_bad_content = encrypt_header(&public, b"not the header at all", 245);
    // Below the modulus (leading zero byte), and with overwhelming odds not
    // PKCS#1-conformant.
    let mut raw = vec![0u8];
    raw.extend((1..256).map(|i| (i * 37 % 251) as u8));
    let bad_padding = STANDARD.encode(&raw);
    let mut flipped = blocks_of(&client.seal(&client.claims(LIST), None).header);
    flipped[0][100] ^= 0x40;
    let answers: Vec<Value> = {
        let mut answers = Vec::new();
        for header in [good_padding_bad_content, bad_padding, header_of(&flipped)] {
            let sealed = Sealed { header, body: None };
            let (status, envelope) = client.send(Method::GET, LIST, &sealed).await.unwrap();
            assert_eq!(status, 401);
            answers.push(envelope["error"].clone());
        }
        answers
    };
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert_eq!(
        answers[0],
        json!({"code": 1, "errCode": "Security.Authentication.Header.DecryptFailed",
               "message": "Decrypt http header failed"})
    );

    // Three more failures use up the burst of six; then 429 at once, even
    // for the right password from this address.
    for _ in 0..3 {
        let wrong = Client::connect(&server.base, "guess").await.unwrap();
        let (status, _) = wrong.call(Method::GET, LIST, None).await.unwrap();
        assert_eq!(status, 401);
    }
    let response = server
        .client()
        .get(format!("{}{LIST}", server.base))
        .header(
            "X-OCS-Header",
            client.seal(&client.claims(LIST), None).header,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let envelope: Value = response.json().await.unwrap();
    assert_eq!(
        err_code(&envelope),
        "Security.Authentication.TooManyFailures"
    );
    // The public routes are not limited.
    let (status, _) = server.get("/api/v1/info").await;
    assert_eq!(status, 200);
}

/// 2b. An address that may fail once more sends sixteen bad headers at
/// once, long ones (48 blocks, slow to decrypt): one is decrypted and
/// fails, the rest are turned away. Failures were counted only as each
/// attempt ended, so all sixteen were let in on that one failure left, and
/// an address made sixteen guesses where it was allowed one.
#[tokio::test]
async fn an_address_cannot_have_more_attempts_in_flight_than_failures_left() {
    let server = with_password("[http]\nauth_failure_burst = 1\nauth_failures_per_minute = 1\n");
    let mut raw = vec![0u8];
    raw.extend((1..256).map(|i| (i * 37 % 251) as u8));
    let header = STANDARD.encode(raw.repeat(48));
    let attempts = (0..16).map(|_| {
        server
            .client()
            .get(format!("{}{LIST}", server.base))
            .header("X-OCS-Header", header.clone())
            .send()
    });
    let statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [401, 429].contains(s)),
        "{statuses:?}"
    );
}

/// A header used before the server was killed is still refused after it
/// starts again, while the header lives: the headers seen are kept in the
/// data directory.
#[tokio::test]
async fn a_replay_after_a_crash_is_refused() {
    replayed_after(|server| {
        // Appends are not waited for: give the writer a moment.
        std::thread::sleep(Duration::from_millis(300));
        server.crash_and_restart();
    })
    .await;
}

/// A header accepted just before the server is stopped is refused after
/// the restart: a server that stops writes out its journal first.
#[tokio::test]
async fn a_replay_after_a_stop_is_refused() {
    replayed_after(|server| server.terminate_and_restart()).await;
}

/// Uses a header, restarts the server with `restart`, and expects the same
/// header refused and a fresh one accepted.
async fn replayed_after(restart: impl FnOnce(&mut Server)) {
    let mut server = with_password("");
    let client = Client::connect(&server.base, PASSWORD).await.unwrap();
    let target = "/api/v1/security/credential/1";
    let sealed = client.seal(&client.claims(target), None);
    let (status, envelope) = client.send(Method::GET, target, &sealed).await.unwrap();
    assert_eq!((status, err_code(&envelope)), (404, "Credential.NotFound"));
    restart(&mut server);
    let client = Client::connect(&server.base, PASSWORD).await.unwrap();
    let (status, envelope) = client.send(Method::GET, target, &sealed).await.unwrap();
    assert_eq!(
        (status, err_code(&envelope)),
        (401, "Security.Authentication.Replayed")
    );
    let fresh = client.seal(&client.claims(target), None);
    let (status, _) = client.send(Method::GET, target, &fresh).await.unwrap();
    assert_eq!(status, 404);
}

/// A client using the password past its rate is refused before its header
/// costs any RSA work or is remembered as used: the same header, sent
/// again once the client may, is taken.
#[tokio::test]
async fn a_password_request_past_the_rate_is_refused_before_its_header_is_used() {
    let server = with_password("[http]\nrequests_per_second = 1\nrequest_burst = 2\n");
    let client = Client::connect(&server.base, PASSWORD).await.unwrap();
    let target = "/api/v1/security/credential/1";
    let sealed: Vec<_> = (0..3)
        .map(|_| client.seal(&client.claims(target), None))
        .collect();
    for header in &sealed[..2] {
        let (status, _) = client.send(Method::GET, target, header).await.unwrap();
        assert_eq!(status, 404);
    }
    let (status, envelope) = client.send(Method::GET, target, &sealed[2]).await.unwrap();
    assert_eq!(
        (status, err_code(&envelope)),
        (429, "Common.TooManyRequests")
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, envelope) = client.send(Method::GET, target, &sealed[2]).await.unwrap();
    assert_eq!(status, 404, "{envelope}");
}

/// Every connection is a file descriptor, and so is every plugin socket
/// and SSH login: a server started under a soft limit of 256 open files
/// (below its own connection cap) raises it to the hard limit, and says so.
#[tokio::test]
async fn the_server_raises_its_open_files_limit() {
    let server = Server::start(Options {
        open_files: Some(256),
        ..Default::default()
    });
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<&str> = line["Max open files".len()..].split_whitespace().collect();
    let (soft, hard) = (numbers[0], numbers[1]);
    assert_eq!(soft, hard, "{line}");
    assert_ne!(soft, "256", "{line}");
    assert!(
        server
            .log_text()
            .contains(&format!("raised the open files limit from 256 to {soft}")),
        "{}",
        server.log_text()
    );
}

/// The server holds the KEK, the data keys and, while it uses them,
/// passwords: a crash writes no core file of its memory.
#[tokio::test]
async fn the_server_writes_no_core_file() {
    let server = Server::start(Options::default());
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let numbers: Vec<&str> = line["Max core file size".len()..]
        .split_whitespace()
        .collect();
    assert_eq!(&numbers[..2], ["0", "0"], "{line}");
}

/// 3b. A block that decrypts to nothing changes a header's bytes but not
/// its text. Put between two blocks that both hold the password (a password
/// longer than one of the SDK's 53-byte chunks), it would make a used header
/// new to the replay check, again and again, until it expires; so a header
/// with such a block is refused as unreadable, used before or not.
#[tokio::test]
async fn a_block_that_decrypts_to_nothing_makes_no_new_header() {
    const LONG: &str = "Front-door-long-password-that-spans-two-chunks-of-the-SDK-00";
    let server = Server::start(Options {
        envs: vec![("CREDHOST_PASSWORD".into(), LONG.into())],
        config: Some("[http]\nauth_failure_burst = 100\n".into()),
        ..Default::default()
    });
    let client = Client::connect(&server.base, LONG).await.unwrap();
    let public = client.public_key().clone();
    let target = "/api/v1/security/credential/1";
    let text = sdk_header_json(LONG, now() + 60, target, &STANDARD.encode([5u8; 32]));
    let captured = encrypt_header(&public, text.as_bytes(), 53);
    let empty = || {
        public
            .encrypt(&mut rsa::rand_core::OsRng, rsa::Pkcs1v15Encrypt, b"")
            .unwrap()
    };
    // A fresh header with an empty block where the password is cut.
    let fresh = sdk_header_json(LONG, now() + 60, target, &STANDARD.encode([6u8; 32]));
    let mut fresh = blocks_of(&encrypt_header(&public, fresh.as_bytes(), 53));
    fresh.insert(1, empty());
    let (status, envelope) = client
        .send(
            Method::GET,
            target,
            &Sealed {
                header: header_of(&fresh),
                body: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (status, err_code(&envelope)),
        (401, "Security.Authentication.Header.DecryptFailed")
    );
    let sealed = Sealed {
        header: captured.clone(),
        body: None,
    };
    let (status, envelope) = client.send(Method::GET, target, &sealed).await.unwrap();
    assert_eq!((status, err_code(&envelope)), (404, "Credential.NotFound"));
    // The captured header, an empty block put inside its password each time.
    for _ in 0..3 {
        let mut replay = blocks_of(&captured);
        replay.insert(1, empty());
        let sealed = Sealed {
            header: header_of(&replay),
            body: None,
        };
        let (status, envelope) = client.send(Method::DELETE, target, &sealed).await.unwrap();
        assert_eq!(status, 401, "{envelope}");
    }
}

/// 3. Replays: re-encrypting or padding the header with a block that
/// decrypts to a space makes new bytes, not a new header; and a header
/// used for GET cannot be used again for DELETE.
#[tokio::test]
async fn replays_are_recognised_by_content_and_not_rebound_to_another_method() {
    let server = with_password("[http]\nauth_failure_burst = 100\n");
    let client = Client::connect(&server.base, PASSWORD).await.unwrap();
    let public = client.public_key().clone();

    let target = "/api/v1/security/credential/1";
    let claims = client.claims(target);
    let sealed = client.seal(&claims, None);
    let (status, envelope) = client.send(Method::GET, target, &sealed).await.unwrap();
    assert_eq!((status, err_code(&envelope)), (404, "Credential.NotFound"));

    // The same header with one more block that decrypts to a space.
    let mut padded = blocks_of(&sealed.header);
    padded.extend(blocks_of(&encrypt_header(&public, b" ", 245)));
    // The same claims encrypted afresh (new random padding, new bytes).
    let resealed = client.seal(&claims, None);
    assert_ne!(resealed.header, sealed.header);
    for (method, header) in [
        (Method::GET, header_of(&padded)),
        (Method::GET, resealed.header),
        (Method::DELETE, sealed.header.clone()),
    ] {
        let replay = Sealed { header, body: None };
        let (status, envelope) = client.send(method.clone(), target, &replay).await.unwrap();
        assert_eq!(
            (status, err_code(&envelope)),
            (401, "Security.Authentication.Replayed"),
            "{method}"
        );
    }

    // A captured header whose last block (the end of `keys`) is swapped for
    // one of the attacker's: new `keys`, same password blocks. Used once by
    // its author for GET, it cannot then serve for DELETE.
    let keys = STANDARD.encode([3u8; 32]);
    let text = sdk_header_json(PASSWORD, now() + 60, target, &keys);
    let cut = text.len() - 20;
    let mut captured = blocks_of(&encrypt_header(&public, &text.as_bytes()[..cut], 245));
    captured.extend(blocks_of(&encrypt_header(
        &public,
        &text.as_bytes()[cut..],
        245,
    )));
    let original = Sealed {
        header: header_of(&captured),
        body: None,
    };
    let (status, _) = client.send(Method::GET, target, &original).await.unwrap();
    assert_eq!(status, 404);
    let forged_tail = format!("{}\"}}", "Z".repeat(18));
    captured.pop();
    captured.extend(blocks_of(&encrypt_header(
        &public,
        forged_tail.as_bytes(),
        245,
    )));
    let forged = Sealed {
        header: header_of(&captured),
        body: None,
    };
    let (status, envelope) = client.send(Method::DELETE, target, &forged).await.unwrap();
    assert_eq!(
        (status, err_code(&envelope)),
        (401, "Security.Authentication.Replayed")
    );

    // A header without `keys` (as a browser console sends for a GET) is
    // recognised by its password's blocks.
    let plain = json!({"auth": PASSWORD, "ts": (now() + 60).to_string(), "uri": LIST}).to_string();
    let first = encrypt_header(&public, plain.as_bytes(), 245);
    let mut padded = blocks_of(&first);
    padded.extend(blocks_of(&encrypt_header(&public, b" ", 245)));
    for (header, expected) in [
        (first.clone(), 200),
        (first, 401),
        (header_of(&padded), 401),
    ] {
        let sealed = Sealed { header, body: None };
        let (status, _) = client.send(Method::GET, LIST, &sealed).await.unwrap();
        assert_eq!(status, expected);
    }
}

/// 4. Unauthenticated CPU: a header of many copies of one valid block is
/// refused before any decryption; headers past the size cap are refused by
/// the HTTP layer; a slow client is cut off; connections are capped.
#[tokio::test]
async fn oversized_headers_slow_clients_and_connection_floods_are_bounded() {
    let server = with_password(
        // Headers time out after 3 s: soon enough for the slowloris check,
        // and long enough that the eight idle connections below still hold
        // their slots when the ninth arrives on a loaded machine (with 1 s,
        // one of them was closed first and the ninth got its slot).
        "[http]\nauth_failure_burst = 100\nheader_read_timeout_secs = 3\n\
         request_timeout_secs = 2\nmax_connections_per_client = 8\n",
    );
    let client = Client::connect(&server.base, PASSWORD).await.unwrap();
    let block = blocks_of(&client.seal(&client.claims(LIST), None).header)[0].clone();

    // 49 blocks: one past the cap, refused with the same answer as any
    // unreadable header; 150 blocks (50 KiB of Base64) likewise.
    for copies in [49, 150] {
        let sealed = Sealed {
            header: header_of(&vec![block.clone(); copies]),
            body: None,
        };
        let (status, envelope) = client.send(Method::GET, LIST, &sealed).await.unwrap();
        assert_eq!(
            (status, message(&envelope)),
            (401, "Decrypt http header failed")
        );
    }
    // 1,200 blocks (400 KiB) do not even reach the API: 431 from HTTP.
    let response = server
        .client()
        .get(format!("{}{LIST}", server.base))
        .header("X-OCS-Header", header_of(&vec![block.clone(); 1200]))
        .send()
        .await;
    match response {
        Ok(r) => assert_eq!(r.status(), 431),
        Err(e) => assert!(e.is_request() || e.is_connect(), "{e}"),
    }

    let addr = server.base.strip_prefix("http://").unwrap().to_string();
    // Slowloris: half a request, then silence. The server hangs up.
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /api/v1/info HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the connection stayed open"
    );

    // A body sent too slowly: the request is answered 503 at its deadline.
    let validate = "/api/v1/security/credential/validate";
    let header = client.seal(&client.claims(validate), None).header;
    let mut trickle = TcpStream::connect(&addr).unwrap();
    trickle
        .write_all(
            format!(
                "POST {validate} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                 X-OCS-Header: {header}\r\nContent-Length: 100\r\n\r\nAAAA"
            )
            .as_bytes(),
        )
        .unwrap();
    trickle
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = [0u8; 512];
    let n = trickle.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("Request.Timeout"), "{answer}");

    // Connections per address: eight are kept, the ninth is closed at once.
    let open: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    closed_at_once(&addr, "the ninth connection");
    drop(open);
}

/// A connection to `addr` is closed without an answer: a request sent on
/// it (asking to close after the answer, so a served one ends too) gets
/// nothing back.
fn closed_at_once(addr: &str, what: &str) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(b"GET /api/v1/info HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok();
    let mut buf = Vec::new();
    let read = stream.read_to_end(&mut buf);
    assert!(
        read.is_err() || buf.is_empty(),
        "{what} was served: {}",
        String::from_utf8_lossy(&buf)
    );
}

/// The connection cap is the API's, whichever loopback address a client
/// uses: the two addresses share it, so the server holds no more
/// connections than it was told to.
#[tokio::test]
async fn both_loopback_addresses_share_the_connection_cap() {
    let server = Server::start(Options {
        config: Some("[http]\nmax_connections = 4\n".into()),
        ..Default::default()
    });
    let port = server.base.rsplit(':').next().unwrap().to_string();
    let (v4, v6) = (format!("127.0.0.1:{port}"), format!("[::1]:{port}"));
    let open: Vec<TcpStream> = [&v4, &v4, &v6, &v6]
        .iter()
        .map(|addr| TcpStream::connect(addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    for addr in [&v4, &v6] {
        closed_at_once(addr, &format!("a fifth connection on {addr}"));
    }
    drop(open);
}

/// 5. A web page in the operator's browser, against the default mode (no
/// password, loopback): cross-site POSTs, form content types, and DNS
/// rebinding are all refused, and nothing happens.
#[tokio::test]
async fn a_web_page_cannot_drive_the_passwordless_server() {
    let server = Server::start(Options::default());
    let url = format!("{}{ROTATE}", server.base);
    let http = server.client();
    let (_, before) = server.get(ENCRYPTION).await;

    let attempts: [(Headers, u16, &str); 8] = [
        (
            vec![
                ("origin", "https://evil.example"),
                ("content-type", "text/plain"),
            ],
            403,
            "Security.Origin.NotAllowed",
        ),
        (
            vec![("origin", "https://evil.example")],
            403,
            "Security.Origin.NotAllowed",
        ),
        (vec![("origin", "null")], 403, "Security.Origin.NotAllowed"),
        (
            vec![("sec-fetch-site", "cross-site")],
            403,
            "Security.Origin.NotAllowed",
        ),
        (
            vec![("content-type", "text/plain;charset=UTF-8")],
            415,
            "Request.ContentType.NotAllowed",
        ),
        (
            vec![("content-type", "application/x-www-form-urlencoded")],
            415,
            "Request.ContentType.NotAllowed",
        ),
        (
            vec![("content-type", "multipart/form-data; boundary=x")],
            415,
            "Request.ContentType.NotAllowed",
        ),
        (
            vec![("host", "rebind.evil.example:2886")],
            403,
            "Security.Host.NotAllowed",
        ),
    ];
    for (headers, status, code) in attempts {
        let mut request = http.post(&url).body("{}");
        for (k, v) in &headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{headers:?}");
        let envelope: Value = response.json().await.unwrap();
        assert_eq!(err_code(&envelope), code, "{headers:?}");
    }
    // DNS rebinding cannot read either.
    let response = http
        .get(format!("{}{LIST}", server.base))
        .header("host", "rebind.evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let (_, after) = server.get(ENCRYPTION).await;
    assert_eq!(
        before["data"]["current_key_id"], after["data"]["current_key_id"],
        "no rotation happened"
    );

    // What clients send still works: no Content-Type (the SDK), JSON (curl
    // --json), the server's own origin, and `localhost`.
    let port = server.base.rsplit(':').next().unwrap().to_string();
    let own_origin = server.base.clone();
    for headers in [
        vec![],
        vec![("content-type", "application/json")],
        vec![("origin", own_origin.as_str())],
        vec![("host", "localhost")],
    ] {
        let mut request = http.get(format!("{}{LIST}", server.base));
        for (k, v) in &headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{headers:?} (port {port})");
    }
}

/// 6. Id lists: a huge one is refused at once with a short message, and a
/// long list of unknown ids is named briefly.
#[tokio::test]
async fn id_lists_are_capped_and_errors_stay_short() {
    let server = Server::start(Options::default());
    let huge: Vec<u64> = (1..=160_000).collect();
    for path in [
        "/api/v1/security/credentials/validate",
        "/api/v1/security/credentials",
    ] {
        let method = if path.ends_with("validate") {
            Method::POST
        } else {
            Method::DELETE
        };
        let (status, envelope) = server
            .call(method, path, Some(json!({ "credential_id_list": huge })))
            .await;
        assert_eq!(status, 400, "{path}");
        assert_eq!(err_code(&envelope), "Common.IllegalArgument");
        assert!(message(&envelope).len() < 200, "{}", message(&envelope));
    }
    let unknown: Vec<u64> = (1..=1000).collect();
    let (status, envelope) = server
        .post(
            "/api/v1/security/credentials/validate",
            json!({ "credential_id_list": unknown }),
        )
        .await;
    assert_eq!(status, 404);
    assert!(
        message(&envelope).ends_with("and 990 more"),
        "{}",
        message(&envelope)
    );
}

/// 7. A decryption oracle: the header's blocks are decrypted one by one
/// and joined, so a block of the attacker's own that opens `ts`, followed by
/// the last block of a captured SDK header (the tail of its body key, then
/// `"}`), makes the captured block's plaintext the timestamp. Quoting an
/// unreadable timestamp back handed out most of the key that decrypts the
/// captured request's body (its passphrase).
#[tokio::test]
async fn a_captured_block_is_not_decrypted_into_an_error() {
    let server = with_password("");
    let client = Client::connect(&server.base, PASSWORD).await.unwrap();
    let public = client.public_key().clone();

    let keys = STANDARD.encode(*b"a body key the attacker wants!!!");
    let header = sdk_header_json(PASSWORD, now() + 60, LIST, &keys);
    // The SDK's 53-byte chunks: the last holds only the key's tail and `"}`.
    let tail = &header[(header.len() - 1) / 53 * 53..];
    assert!(
        tail.len() > 10 && keys.ends_with(&tail[..tail.len() - 2]),
        "{tail}"
    );
    let captured = blocks_of(&encrypt_header(&public, header.as_bytes(), 53));

    let opener = format!(r#"{{"uri": "{LIST}", "ts": ""#);
    let mut forged = blocks_of(&encrypt_header(&public, opener.as_bytes(), 245));
    forged.push(captured.last().unwrap().clone());
    let sealed = Sealed {
        header: header_of(&forged),
        body: None,
    };
    let (status, envelope) = client.send(Method::GET, LIST, &sealed).await.unwrap();
    assert_eq!(status, 401, "{envelope}");
    let secret = &tail[..tail.len() - 2];
    let leaked = |text: &str| {
        secret
            .as_bytes()
            .windows(8)
            .any(|w| text.contains(std::str::from_utf8(w).unwrap()))
    };
    assert!(!leaked(&envelope.to_string()), "{envelope}");
    assert!(!leaked(&server.log_text()), "the server log quotes it");
}

/// A settings file the server cannot read is reported by line, column and
/// key, never by its text: toml's own messages show the offending line and
/// quote values, and a typo next to a password put it on stderr (and from
/// there in the service's journal).
#[test]
fn a_settings_file_with_a_mistake_is_reported_without_its_values() {
    for (text, secret) in [
        ("password = \"pa\\qSECRETss\"\n", "SECRET"),
        ("[store]\nstore_password = 98765432\n", "98765432"),
        ("store_password = 98765432\n", "98765432"),
        ("password = SECRET-unquoted\n", "SECRET"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("credhost.toml");
        std::fs::write(&config, text).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_credhost"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(!output.status.success(), "{text}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains(secret), "{text}: {stderr}");
        assert!(stderr.contains("line "), "{text}: {stderr}");
    }
}

/// A settings file that names a certificate but no key (or a key but no
/// certificate) is refused at start: the server would otherwise take it as
/// TLS when judging its exposure, and then serve plain HTTP.
#[test]
fn half_a_tls_setting_is_refused_at_start() {
    for line in [
        "tls_cert = \"/nonexistent/cert.pem\"",
        "tls_key = \"/nonexistent/key.pem\"",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("credhost.toml");
        std::fs::write(&config, format!("{line}\n")).unwrap();
        let said = refused_at_start(
            std::process::Command::new(env!("CARGO_BIN_EXE_credhost"))
                .args(["serve", "--listen", "0.0.0.0:0", "--config"])
                .arg(&config)
                .arg("--data-dir")
                .arg(dir.path())
                .env("CREDHOST_PASSWORD", PASSWORD),
            line,
        );
        assert!(
            said.contains("tls_cert and tls_key go together"),
            "{line}: {said}"
        );
    }
}

/// The settings file sets the password, the store and what the server
/// trusts: one others may write is refused, saying why and not what it
/// holds.
#[test]
fn a_settings_file_others_may_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("credhost.toml");
    std::fs::write(&config, "password = \"Settings-7712\"\n").unwrap();
    let refused = |what: &str| {
        refused_at_start(
            std::process::Command::new(env!("CARGO_BIN_EXE_credhost"))
                .args(["serve", "--listen", "127.0.0.1:0", "--config"])
                .arg(&config)
                .arg("--data-dir")
                .arg(dir.path().join("data")),
            what,
        )
    };
    for mode in [0o620, 0o602, 0o666] {
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(mode)).unwrap();
        let said = refused("a settings file others may write");
        assert!(said.contains("others may write it"), "{mode:o}: {said}");
        assert!(!said.contains("Settings-7712"), "{said}");
    }
    // Another user's (only root can make it so, so only root's runs check
    // this): its owner would set the password.
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&config, Some(65534), None).unwrap();
        let said = refused("a settings file of another user's");
        assert!(said.contains("owned by uid 65534"), "{said}");
        std::os::unix::fs::chown(&config, Some(0), None).unwrap();
    }
    // Its owner's alone: taken.
    let config = Some(std::fs::read_to_string(&config).unwrap());
    let server = support::server::Server::start(support::server::Options {
        config,
        ..Default::default()
    });
    assert!(!server.log_text().contains("Settings-7712"));
}

/// `localhost` is two addresses, and clients try ::1 first: a server on
/// 127.0.0.1 answers on ::1 too, so no other local user can sit there and
/// collect what clients of `localhost` send.
#[tokio::test]
async fn localhost_is_this_server_on_both_loopback_addresses() {
    let server = Server::start(Options::default());
    let port = server.base.rsplit(':').next().unwrap().to_string();
    for base in [server.base.clone(), format!("http://[::1]:{port}")] {
        let response = reqwest::get(format!("{base}/api/v1/info")).await.unwrap();
        assert_eq!(response.status(), 200, "{base}");
    }
    // Taken by someone else first, ::1 stops the start instead.
    let squatter = std::net::TcpListener::bind("[::1]:0").unwrap();
    let taken = squatter.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let said = refused_at_start(
        std::process::Command::new(env!("CARGO_BIN_EXE_credhost"))
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", taken.port()))
            .arg("--data-dir")
            .arg(dir.path()),
        "::1 taken",
    );
    assert!(
        said.contains(&format!("{taken} is taken by another process")),
        "{said}"
    );
    // Listening on every IPv4 address (127.0.0.1 among them) leaves ::1
    // to no one else either.
    let everywhere = Server::start(Options {
        listen: Some("0.0.0.0:0".into()),
        args: vec!["--allow-remote-without-password".into()],
        ..Default::default()
    });
    let port = everywhere.base.rsplit(':').next().unwrap();
    let response = reqwest::get(format!("http://[::1]:{port}/api/v1/info"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// A password over plain HTTP beyond loopback is refused at start; on
/// loopback it is allowed with a warning.
#[test]
fn a_password_over_plain_http_beyond_loopback_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_credhost"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .env("CREDHOST_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--allow-password-over-plain-http"),
        "{stderr}"
    );

    let server = with_password("");
    assert!(
        server.log_text().contains("served over plain HTTP"),
        "{}",
        server.log_text()
    );
}

/// Requests anyone may send and have refused (a 404 needs no password)
/// cannot fill the server's log: each refusal's line quoted the path whole,
/// so a client wrote to the log as fast as it could send. Lines now quote
/// 256 bytes at most, and past a client's budget they are dropped and
/// counted, other clients' still logged.
#[tokio::test]
async fn refused_requests_cannot_fill_the_log() {
    let server = Server::start(Options::default());
    let before = server.log_text().len();
    let path = format!("/{}", "x".repeat(8 * 1024));
    let mut sent = 0;
    for _ in 0..600 {
        let response = server
            .client()
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        sent += path.len();
    }
    let log = server.log_text();
    let grown = log.len() - before;
    assert!(
        grown < sent / 20,
        "the log grew by {grown} bytes for {sent} bytes of paths"
    );
    assert!(log.contains("x… (8193 bytes)"), "{}", &log[before..]);
    // The client's burst is logged in full, the rest dropped and counted.
    let refused = log[before..].matches("request refused").count();
    assert!((50..70).contains(&refused), "{refused} refusals logged");
    // Another client's refusal is still logged: the flood silenced only
    // its sender.
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let response = other
        .get(format!("{}/another-client", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(server.log_text().contains("/another-client"));
}

/// A change runs to its end even when its client leaves, so the connection
/// caps no longer bound how many run: one client holds at most 64 at once
/// (here 64 creates whose targets take 3 s to speak), and its next is
/// refused with nothing changed, while other clients' still get places.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_holds_at_most_64_changes_under_way() {
    use support::fake_ssh::{self, FakeSsh};
    let targets =
        FakeSsh::start_with_latency(&fake_ssh::loopback_ips(6000, 65), Duration::from_secs(3))
            .await;
    let server = Server::start(Options::default());
    let body = |i: usize| {
        json!({ "target_type": "HOST", "name": format!("slow-{i}"),
            "ssh_credential_property": {
                "targets": [{ "ip": targets.addrs[i].ip().to_string(), "port": targets.addrs[i].port() }],
                "username": fake_ssh::USER, "type": "PASSWORD", "passphrase": fake_ssh::PASSWORD } })
    };
    let url = format!("{}/api/v1/security/credential", server.base);
    let held: Vec<_> = (0..64)
        .map(|i| {
            let (http, url, body) = (server.client().clone(), url.clone(), body(i));
            tokio::spawn(async move { http.post(url).json(&body).send().await.unwrap().status() })
        })
        .collect();
    // All 64 have begun (their targets answer only after 3 s).
    let log = server.data_dir().join("audit.log");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&log)
        .unwrap()
        .matches("\"request.begin\"")
        .count()
        < 64
    {
        assert!(Instant::now() < deadline, "the 64 changes did not begin");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And have taken their places, a moment after their records.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, refused) = server.post("/api/v1/security/credential", body(64)).await;
    assert_eq!(status, 503, "{refused}");
    assert_eq!(err_code(&refused), "Common.Unavailable");
    assert!(
        message(&refused).contains("64 changes of this client"),
        "{refused}"
    );
    // Another client (another loopback address) still gets a place.
    let other = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let answer = other.post(&url).json(&body(64)).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    for status in futures::future::join_all(held).await {
        assert_eq!(status.unwrap(), 200);
    }
    let (_, list) = server.get("/api/v1/security/credentials").await;
    assert_eq!(list["data"]["page"]["total_elements"], 65, "{list}");
}
