//! A credhost verifier for target type `OB`: OceanBase, OBProxy, and any
//! MySQL-protocol server. Written against the plugin SDK
//! (`plugins/sdk`) and the contract (`wit/0.3.0`) only: it speaks the MySQL
//! client handshake itself over the TCP socket the host lends it, one
//! target per call (the host runs a credential's targets at once).

mod handshake;
mod property;
mod schema;
mod scramble;

use credhost_plugin_sdk::log::{self, Level};
use credhost_plugin_sdk::{
    Descriptor, Normalized, Purpose, Reason, Refusal, Target, Verdict, Verifier, failed, ok, show,
};

struct ObVerifier;

impl Verifier for ObVerifier {
    fn describe() -> Descriptor {
        Descriptor {
            target_type: "OB".into(),
            property_field: "ob_credential_property".into(),
            public_field: "ob_secret".into(),
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            property_schema: schema::PROPERTY.into(),
            public_schema: schema::PUBLIC.into(),
            validation_failed_code: "Credential.OB.ValidationFailed".into(),
            validation_failed_message: "OB connection validation failed".into(),
        }
    }

    fn normalize(
        property: &str,
        purpose: Purpose,
        _stored: Option<&str>,
    ) -> Result<Normalized, Refusal> {
        property::normalize(property, purpose)
    }

    fn verify_target(public: &str, secret: &[u8], target: &Target) -> Verdict {
        let Ok(public) = property::Public::from_json(public) else {
            return failed(Reason::Other, "unreadable public part");
        };
        let password = String::from_utf8_lossy(secret);
        match handshake::login(&target.ip, target.port, &public.username, &password) {
            Ok(server) => {
                log::emit(
                    Level::Debug,
                    &format!("logged in to {} ({server})", show(target)),
                );
                ok()
            }
            Err(e) => failed(
                e.reason(),
                format!("OB validation failed: {}: {e}", show(target)),
            ),
        }
    }
}

credhost_plugin_sdk::export_verifier!(ObVerifier);
