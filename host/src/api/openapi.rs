//! The OpenAPI document: the routes and types from the code (utoipa), and,
//! when it is served, the property and public schemas of every loaded
//! verifier merged in, so the document describes exactly the target types
//! this server takes right now.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use super::handlers::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "credhost",
        description = "A credential service that speaks obshell's credential API. Every answer is \
            obshell's envelope, its HTTP status equal to `status`. Authenticate with \
            `Authorization: Bearer <API token>`, or obshell's `X-OCS-Header` (an RSA-encrypted \
            JSON `{auth, ts, uri, keys}`, the body then Base64 of AES-128-CBC under `keys`), or \
            nothing when the server has no password (loopback only). The target types, and the \
            shape of each one's property, are those of the verifier plugins loaded now."
    ),
    components(schemas(super::schema::ErrorEnvelope, super::schema::ErrorBody)),
    tags(
        (name = "credentials", description = "obshell's credential endpoints"),
        (name = "keys", description = "Keys, encryption policies, re-encryption"),
        (name = "plugins"),
        (name = "tokens", description = "API tokens and their scopes"),
        (name = "audit"),
        (name = "identity", description = "What clients ask before they authenticate"),
        (name = "operations"),
        (name = "cluster", description = "Servers sharing one database"),
    )
)]
struct Document;

/// What the code says, before plugins.
pub fn base() -> utoipa::openapi::OpenApi {
    Document::openapi()
}

/// The document of the routes, as the router was built, and the last
/// document served: anyone may ask for it, unauthenticated, and it changes
/// only when the plugins do, so it is made once per set of plugins rather
/// than on every request.
#[derive(Clone)]
pub struct Base {
    routes: Arc<utoipa::openapi::OpenApi>,
    served: Arc<std::sync::Mutex<Option<Served>>>,
}

/// A document served, and the plugins it was made with (held weakly: a
/// registry replaced by a reload is freed, and its address is not reused
/// while this points at it).
struct Served {
    plugins: std::sync::Weak<crate::plugins::Registry>,
    text: axum::body::Bytes,
}

impl Base {
    pub fn new(routes: utoipa::openapi::OpenApi) -> Self {
        Self {
            routes: Arc::new(routes),
            served: Arc::default(),
        }
    }
}

/// This document, with the loaded verifiers' schemas.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "identity",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
pub async fn document(
    State(service): State<AppState>,
    Extension(base): Extension<Base>,
) -> impl IntoResponse {
    let registry = service.plugins();
    let mut served = base.served.lock().expect("served document lock");
    let text = match served.as_ref() {
        Some(done) if std::sync::Weak::ptr_eq(&done.plugins, &Arc::downgrade(&registry)) => {
            done.text.clone()
        }
        _ => {
            let text = axum::body::Bytes::from(with_plugins(&base.routes, &registry));
            *served = Some(Served {
                plugins: Arc::downgrade(&registry),
                text: text.clone(),
            });
            text
        }
    };
    ([(header::CONTENT_TYPE, "application/json")], text)
}

/// The routes' document with `registry`'s verifiers merged in, as text.
fn with_plugins(routes: &utoipa::openapi::OpenApi, registry: &crate::plugins::Registry) -> String {
    let mut document = serde_json::to_value(routes).expect("the document serialises");
    let verifiers: Vec<_> = registry
        .target_types()
        .into_iter()
        .filter_map(|t| registry.verifier(t).cloned())
        .collect();
    merge(
        &mut document,
        verifiers
            .iter()
            .map(|v| &v.info)
            .collect::<Vec<_>>()
            .as_slice(),
    );
    document.to_string()
}

/// Adds each verifier's property (to the bodies that carry one) and public
/// part (to credentials), and the target types, to the document.
pub fn merge(document: &mut Value, verifiers: &[&crate::plugins::VerifierInfo]) {
    let schemas = document["components"]["schemas"]
        .as_object_mut()
        .expect("the document has component schemas");
    let types: Vec<Value> = verifiers
        .iter()
        .map(|v| Value::from(v.target_type.clone()))
        .collect();
    let mut properties = Map::new();
    let mut publics = Map::new();
    for v in verifiers {
        let property = format!("{}.property", v.target_type);
        let public = format!("{}.public", v.target_type);
        schemas.insert(property.clone(), v.property_schema.clone());
        let mut shown = v.public_schema.clone();
        // The host shows the pinned host keys beside the verifier's fields.
        if let Some(fields) = shown["properties"].as_object_mut() {
            fields.insert(
                "host_keys".into(),
                json!({ "type": "array", "items": { "$ref": "#/components/schemas/HostKey" } }),
            );
        }
        schemas.insert(public.clone(), shown);
        properties.insert(
            v.property_field.clone(),
            json!({ "$ref": format!("#/components/schemas/{property}") }),
        );
        publics.insert(
            v.public_field.clone(),
            json!({ "$ref": format!("#/components/schemas/{public}") }),
        );
    }
    schemas.insert(
        "HostKey".into(),
        json!({ "type": "object", "required": ["ip", "port", "key_type", "fingerprint"],
                "properties": { "ip": { "type": "string" }, "port": { "type": "integer" },
                                "key_type": { "type": "string" },
                                "fingerprint": { "type": "string", "description": "SHA256:…" } } }),
    );
    for body in ["CreateCredential", "UpdateCredential", "ValidateCredential"] {
        if let Some(fields) = schemas[body]["properties"].as_object_mut() {
            fields.extend(properties.clone());
            if let Some(target_type) = fields.get_mut("target_type") {
                target_type["enum"] = Value::from(types.clone());
            }
        }
    }
    if let Some(fields) = schemas["Credential"]["properties"].as_object_mut() {
        fields.extend(publics);
    }
}
