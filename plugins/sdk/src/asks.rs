//! Work only the host does (an SSH login, reading a private key), asked for
//! instead of imported (contract 0.3). The host answers an ask and calls the
//! export again, in a fresh instance, with every answer so far; the
//! verifier's code runs again from the start and takes, at each ask, the
//! answer it was given, until it reaches one it was not given: the export
//! then returns that ask instead of its result. A verifier is a function of
//! its arguments, so each run takes the same path up to its next ask.
//!
//! Why asks rather than imports: a component whose imports pass strings
//! carries a shim module that every instantiation links, and every call is a
//! fresh instance. A verifier that imports nothing costs less on every call,
//! its `normalize` most of all.

use core::cell::UnsafeCell;

use alloc::string::String;
use alloc::vec::IntoIter;
use alloc::vec::Vec;

use crate::Target;
use crate::bindings::credhost::plugin::ssh::{
    KeyFacts, Login, LoginResult, Outcome, PrivateKey, Proof,
};
use crate::bindings::exports::credhost::plugin::verification::{Answer, Ask};

/// The answers of one export call, and the first ask it could not answer.
struct Round {
    answers: IntoIter<Answer>,
    asked: Option<Ask>,
}

/// The current round, `None` until it has answers or an ask. A call that
/// asks nothing (most calls) never writes it: a page the instance writes is
/// a page the host has to reset after the call.
struct Current(UnsafeCell<Option<Round>>);

// SAFETY: the component model gives an instance one thread, and no
// reference into the cell outlives the function that takes it.
unsafe impl Sync for Current {}

static CURRENT: Current = Current(UnsafeCell::new(None));

/// The current round, to read or change briefly.
///
/// # Safety
/// No other reference into `CURRENT` may be alive.
unsafe fn current() -> &'static mut Option<Round> {
    // SAFETY: one thread, and the caller holds no other reference.
    unsafe { &mut *CURRENT.0.get() }
}

/// Starts an export call with the host's answers so far.
pub fn begin(answers: Vec<Answer>) {
    if answers.is_empty() {
        return;
    }
    // SAFETY: no reference into the cell is held here.
    unsafe {
        *current() = Some(Round {
            answers: answers.into_iter(),
            asked: None,
        });
    }
}

/// Ends it: the ask to return instead of its result, if it reached one.
pub fn end() -> Option<Ask> {
    // SAFETY: as in `begin`.
    let current = unsafe { current() };
    current.as_ref()?;
    current.take().and_then(|round| round.asked)
}

/// The host's answer to `ask`, or `None` when it has not given it yet
/// (the ask is then noted: the first one only, as the rest of this run is
/// thrown away).
fn answer(ask: impl FnOnce() -> Ask) -> Option<Answer> {
    // SAFETY: as in `begin`; `ask` does not reach `CURRENT`.
    let current = unsafe { current() };
    let round = current.get_or_insert_with(|| Round {
        answers: Vec::new().into_iter(),
        asked: None,
    });
    if round.asked.is_some() {
        return None;
    }
    let answer = round.answers.next();
    if answer.is_none() {
        round.asked = Some(ask());
    }
    answer
}

fn not_yet(target: &Target, message: &str) -> LoginResult {
    LoginResult {
        target: target.clone(),
        outcome: Outcome::ProtocolError,
        message: message.into(),
    }
}

fn login(target: &Target, username: &str, proof: impl FnOnce() -> Proof) -> LoginResult {
    let asked = answer(|| {
        Ask::Login(Login {
            target: target.clone(),
            username: username.into(),
            proof: proof(),
        })
    });
    match asked {
        Some(Answer::Login(result)) => result,
        // What this run returns is discarded for the ask.
        None => not_yet(target, "asked the host"),
        Some(_) => not_yet(target, "the host answered another ask"),
    }
}

fn key(text: &str, passphrase: Option<&str>) -> PrivateKey {
    PrivateKey {
        text: text.into(),
        passphrase: passphrase.map(Into::into),
    }
}

/// Logs in with a password to `target` (which must be the target of the
/// `verify-target` call).
pub fn password_login(target: &Target, username: &str, password: &str) -> LoginResult {
    login(target, username, || Proof::Password(password.into()))
}

/// Logs in with a private key (OpenSSH or PEM text; ed25519, ECDSA or RSA)
/// to `target`; `passphrase` decrypts the key when it is encrypted.
pub fn key_login(
    target: &Target,
    username: &str,
    private_key: &str,
    passphrase: Option<&str>,
) -> LoginResult {
    login(target, username, || {
        Proof::Key(key(private_key, passphrase))
    })
}

/// The type and `SHA256:` fingerprint of a private key's public half, or
/// why the key cannot be read.
pub fn key_fingerprint(
    private_key: &str,
    passphrase: Option<&str>,
) -> Result<(String, String), String> {
    match answer(|| Ask::KeyFacts(key(private_key, passphrase))) {
        Some(Answer::KeyFacts(facts)) => facts.map(
            |KeyFacts {
                 key_type,
                 fingerprint,
             }| (key_type, fingerprint),
        ),
        None => Err("asked the host".into()),
        Some(_) => Err("the host answered another ask".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(port: u16) -> Target {
        Target {
            ip: "127.0.0.1".into(),
            port,
        }
    }

    fn answered(port: u16, outcome: Outcome) -> Answer {
        Answer::Login(LoginResult {
            target: target(port),
            outcome,
            message: String::new(),
        })
    }

    // One test: the round is a static, as it is in an instance.
    #[test]
    fn a_run_replays_to_its_next_ask_or_to_its_end() {
        // First round: the first ask ends the run; later ones are not noted.
        begin(Vec::new());
        assert_eq!(
            password_login(&target(1), "root", "pw").outcome,
            Outcome::ProtocolError
        );
        assert!(key_fingerprint("key", None).is_err());
        let Some(Ask::Login(login)) = end() else {
            panic!("the first ask is returned");
        };
        assert_eq!((login.target.port, login.username.as_str()), (1, "root"));
        assert!(matches!(login.proof, Proof::Password(ref p) if p == "pw"));

        // Second round: the first login is answered, the second one asked.
        begin(alloc::vec![answered(1, Outcome::Success)]);
        assert_eq!(
            password_login(&target(1), "root", "pw").outcome,
            Outcome::Success
        );
        let second = key_login(&target(2), "root", "key text", Some("p"));
        assert_eq!(second.outcome, Outcome::ProtocolError);
        let Some(Ask::Login(login)) = end() else {
            panic!("the second ask is returned");
        };
        assert!(matches!(login.proof, Proof::Key(ref k) if k.text == "key text"));

        // Every ask answered: the run ends with its result, nothing asked.
        begin(alloc::vec![
            answered(1, Outcome::Success),
            Answer::KeyFacts(Ok(KeyFacts {
                key_type: "ssh-ed25519".into(),
                fingerprint: "SHA256:x".into(),
            })),
        ]);
        assert_eq!(
            password_login(&target(1), "root", "pw").outcome,
            Outcome::Success
        );
        assert_eq!(
            key_fingerprint("key", None),
            Ok(("ssh-ed25519".into(), "SHA256:x".into()))
        );
        assert!(end().is_none());

        // An answer of another kind than asked is not taken for the ask's.
        begin(alloc::vec![answered(1, Outcome::Success)]);
        assert_eq!(
            key_fingerprint("key", None),
            Err("the host answered another ask".into())
        );
        assert!(end().is_none());
    }
}
