//! Entry points for the fuzz targets (`fuzz/`) and for the test that replays
//! their corpus on stable Rust: each takes arbitrary bytes and runs one
//! piece of input handling exactly as a request would. None may panic;
//! refusals are fine.

use std::sync::{Arc, OnceLock};

use crate::keys::TransportKey;
use crate::plugins::{EngineSettings, PrecompileCache, Purpose, Registry, Runtime};

/// One small key for every run: the header's handling does not depend on
/// the key size, and 1024-bit operations keep the fuzzer fast.
fn key() -> &'static TransportKey {
    static KEY: OnceLock<TransportKey> = OnceLock::new();
    KEY.get_or_init(|| TransportKey::generate(1024).expect("a 1024-bit key"))
}

/// `X-OCS-Header` from its Base64 text to claims, decrypting every block.
pub fn header(value: &[u8]) {
    let key = key();
    let Ok(blocks) = super::auth::header_blocks(value, key.block_len()) else {
        return;
    };
    let mut plain = Vec::new();
    for block in blocks.chunks(key.block_len()) {
        plain.extend_from_slice(&key.decrypt_block(block));
    }
    let _ = super::auth::header_claims(&plain);
}

/// The header's JSON, as decrypted.
pub fn claims(plain: &[u8]) {
    let _ = super::auth::header_claims(plain);
}

/// An encrypted body: the first byte chooses whether `keys` is the fixed
/// test key, garbage or absent, the rest is the body.
pub fn body(data: &[u8]) {
    let (choice, sealed) = data.split_first().unwrap_or((&0, &[]));
    let keys = match choice % 3 {
        0 => Some("AAECAwQFBgcICQoLDA0OD2RlZmdoaWprbG1ub3BxcnM="),
        1 => Some("AAEC"),
        _ => None,
    };
    let _ = super::auth::open_body(keys, sealed);
}

/// A request body bound the way the handlers bind it.
pub fn binding(data: &[u8]) {
    let Ok(fields) = crate::fields::Fields::parse(data, "CreateCredentialParam") else {
        return;
    };
    for key in ["target_type", "name", "description", "aes_key", "policy"] {
        let _ = fields.string(key);
    }
    if let Ok(Some(ids)) = fields.ids("credential_id_list") {
        let _ = crate::service::distinct_ids(ids);
    }
    let _ = super::decode::credential_id(Some(&String::from_utf8_lossy(data)));
}

/// The list endpoint's query string.
pub fn query(data: &[u8]) {
    let _ = super::query::list_request(Some(&String::from_utf8_lossy(data)));
}

struct Plugins {
    tokio: tokio::runtime::Runtime,
    registry: Registry,
}

fn plugins() -> &'static Plugins {
    static PLUGINS: OnceLock<Plugins> = OnceLock::new();
    PLUGINS.get_or_init(|| {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let registry = tokio.block_on(async {
            let runtime: Arc<Runtime> = Runtime::new(
                EngineSettings::default(),
                PrecompileCache::default(),
                Default::default(),
            )
            .expect("the plugin runtime");
            Registry::load(&runtime, None, &Default::default())
                .await
                .expect("the embedded plugins")
        });
        Plugins { tokio, registry }
    })
}

/// A property given to every embedded verifier's `normalize`, for each
/// purpose: the sandbox must turn whatever the plugin does into an answer.
pub fn normalize(data: &[u8]) {
    let plugins = plugins();
    let property = String::from_utf8_lossy(data);
    for target_type in plugins.registry.target_types() {
        let verifier = plugins.registry.verifier(target_type).expect("listed");
        for purpose in [Purpose::Create, Purpose::Update, Purpose::Validate] {
            let _ = plugins
                .tokio
                .block_on(verifier.normalize(&property, purpose, None));
        }
    }
}
