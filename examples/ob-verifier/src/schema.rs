//! What `ob_credential_property` and `ob_secret` look like (JSON Schema).

pub const PROPERTY: &str = r#"{
  "type": "object",
  "title": "OceanBase / MySQL credential",
  "required": ["targets", "username", "passphrase"],
  "properties": {
    "targets": {
      "type": "array", "minItems": 1, "maxItems": 1000,
      "description": "The servers this credential logs in to.",
      "items": {
        "type": "object", "required": ["ip"],
        "properties": {
          "ip": {"type": "string", "title": "IP address"},
          "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 2881, "title": "SQL port"}
        }
      }
    },
    "username": {"type": "string", "minLength": 1, "maxLength": 256,
                 "description": "e.g. root@sys, or user@tenant#cluster through OBProxy"},
    "passphrase": {"type": "string", "maxLength": 4096, "writeOnly": true,
                   "description": "Empty on update keeps the stored one."}
  }
}"#;

pub const PUBLIC: &str = r#"{
  "type": "object",
  "required": ["targets", "username"],
  "properties": {
    "targets": {"type": "array", "items": {"type": "object", "required": ["ip", "port"],
                "properties": {"ip": {"type": "string"}, "port": {"type": "integer"}}}},
    "username": {"type": "string"}
  }
}"#;
