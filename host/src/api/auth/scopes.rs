//! The scope each route needs. A route not named here needs `admin`, so a
//! route added later is closed until someone opens it on purpose.

use axum::http::Method;

use crate::service::Scope;

pub fn needed(method: &Method, route: &str) -> Scope {
    // A HEAD is answered by the route's GET, less the body.
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    match (method, route) {
        (
            "GET",
            "/api/v1/security/credential/{id}"
            | "/api/v1/security/credentials"
            | "/api/v1/security/credentials/validations"
            | "/api/v1/security/encryption"
            | "/api/v1/plugins"
            | "/api/v1/tokens/self"
            | "/api/v1/info"
            | "/api/v1/secret"
            | "/api/v1/openapi.json"
            | "/metrics"
            | "/"
            | "/console/"
            | "/console/{file}",
        ) => Scope::Read,
        (
            "POST",
            "/api/v1/security/credential/validate" | "/api/v1/security/credentials/validate",
        ) => Scope::Validate,
        ("POST", "/api/v1/security/credential")
        | ("PATCH" | "DELETE", "/api/v1/security/credential/{id}")
        | ("DELETE", "/api/v1/security/credentials") => Scope::Write,
        _ => Scope::Admin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_needs_its_scope() {
        let get = Method::GET;
        assert_eq!(needed(&get, "/api/v1/security/credentials"), Scope::Read);
        assert_eq!(
            needed(&Method::POST, "/api/v1/security/credentials/validate"),
            Scope::Validate
        );
        assert_eq!(
            needed(&Method::DELETE, "/api/v1/security/credential/{id}"),
            Scope::Write
        );
        assert_eq!(
            needed(&Method::POST, "/api/v1/security/keys/rotate"),
            Scope::Admin
        );
        assert_eq!(needed(&get, "/api/v1/tokens"), Scope::Admin);
        assert_eq!(needed(&get, "/api/v1/audit"), Scope::Admin);
        assert_eq!(needed(&get, "/api/v1/some/new/route"), Scope::Admin);
        assert_eq!(
            needed(&Method::HEAD, "/api/v1/security/credentials"),
            Scope::Read
        );
    }
}
