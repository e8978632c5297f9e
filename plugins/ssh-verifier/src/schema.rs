//! What `ssh_credential_property` and `ssh_secret` look like, as JSON Schemas
//! for the OpenAPI document and for consoles that build forms from them.

pub const PROPERTY: &str = r#"{
  "type": "object",
  "title": "SSH credential",
  "required": ["targets", "username", "type"],
  "properties": {
    "targets": {
      "type": "array", "minItems": 1, "maxItems": 1000,
      "description": "The hosts this credential logs in to.",
      "items": {
        "type": "object", "required": ["ip"],
        "properties": {
          "ip": {"type": "string", "title": "IP address", "description": "IPv4 or IPv6; no host names."},
          "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 22, "title": "SSH port"}
        }
      }
    },
    "username": {"type": "string", "minLength": 1, "maxLength": 256},
    "type": {"type": "string", "enum": ["PASSWORD", "PUBLIC_KEY"], "default": "PASSWORD",
             "title": "Authentication"},
    "passphrase": {"type": "string", "maxLength": 4096, "writeOnly": true,
                   "description": "The password (PASSWORD), or the private key's passphrase if it is encrypted (PUBLIC_KEY). Empty on update keeps the stored secret."},
    "private_key": {"type": "string", "maxLength": 16384, "writeOnly": true,
                    "title": "Private key", "contentMediaType": "application/x-pem-file",
                    "description": "PUBLIC_KEY only: an OpenSSH or PEM private key (ed25519, ECDSA, RSA). Empty on update keeps the stored key."}
  }
}"#;

pub const PUBLIC: &str = r#"{
  "type": "object",
  "required": ["targets", "username", "type"],
  "properties": {
    "targets": {
      "type": "array",
      "items": {"type": "object", "required": ["ip", "port"],
                "properties": {"ip": {"type": "string"}, "port": {"type": "integer"}}}
    },
    "username": {"type": "string"},
    "type": {"type": "string", "enum": ["PASSWORD", "PUBLIC_KEY"]},
    "key_type": {"type": "string", "description": "PUBLIC_KEY only, e.g. ssh-ed25519."},
    "key_fingerprint": {"type": "string", "description": "PUBLIC_KEY only: SHA256:…, as ssh-keygen -l prints it."}
  }
}"#;
