//! credhost verifier for target type `HOST`: obshell's
//! `ssh_credential_property`, proven by an SSH login the host makes when
//! asked, with a password (obshell's `PASSWORD`) or a private key
//! (`PUBLIC_KEY`, which obshell lacks).
//!
//! Without `std`, and asking for its logins rather than importing them, so
//! the component imports nothing: every call instantiates it afresh, and
//! each import would cost the host time to link and set up, per call.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

mod property;
mod schema;

use credhost_plugin_sdk::{
    Descriptor, Normalized, Purpose, Reason, Refusal, Target, Verdict, Verifier, failed, ok, show,
    ssh,
};

use alloc::format;

credhost_plugin_sdk::no_std_runtime!();

struct SshVerifier;

impl Verifier for SshVerifier {
    fn describe() -> Descriptor {
        Descriptor {
            target_type: "HOST".into(),
            property_field: "ssh_credential_property".into(),
            public_field: "ssh_secret".into(),
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            property_schema: schema::PROPERTY.into(),
            public_schema: schema::PUBLIC.into(),
            validation_failed_code: "Credential.SSH.ValidationFailed".into(),
            validation_failed_message: "SSH connection validation failed".into(),
        }
    }

    fn normalize(
        property: &str,
        purpose: Purpose,
        stored: Option<&str>,
    ) -> Result<Normalized, Refusal> {
        property::normalize(property, purpose, stored)
    }

    fn verify_target(public: &str, secret: &[u8], target: &Target) -> Verdict {
        let Some(public) = property::Public::from_json(public) else {
            return failed(
                Reason::Other,
                "failed to deserialize secret: the stored public part is not valid",
            );
        };
        let result = match public.login(secret) {
            Ok(property::Login::Password(password)) => {
                ssh::password_login(target, &public.username, &password)
            }
            Ok(property::Login::Key {
                private_key,
                passphrase,
            }) => ssh::key_login(
                target,
                &public.username,
                &private_key,
                passphrase.as_deref(),
            ),
            Err(why) => {
                return failed(
                    Reason::Other,
                    format!("failed to deserialize secret: {why}"),
                );
            }
        };
        let reason = match result.outcome {
            ssh::Outcome::Success => return ok(),
            ssh::Outcome::AuthFailed => Reason::AuthFailed,
            ssh::Outcome::Refused => Reason::Refused,
            ssh::Outcome::Unreachable => Reason::Unreachable,
            ssh::Outcome::Timeout => Reason::Timeout,
            ssh::Outcome::ProtocolError => Reason::ProtocolError,
            ssh::Outcome::NotGranted => Reason::NotGranted,
            ssh::Outcome::HostKeyMismatch => Reason::HostKeyMismatch,
            ssh::Outcome::BadKey => Reason::Other,
        };
        failed(
            reason,
            format!(
                "SSH validation failed: SSH connection failed to {}: {}",
                show(target),
                result.message
            ),
        )
    }
}

credhost_plugin_sdk::export_verifier!(SshVerifier);
