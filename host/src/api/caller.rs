//! Whom a request's work is done for, so that slow work (verification) is
//! shared fairly between clients.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::auth::ClientAddr;
use crate::budget::Client;
use crate::service::Principal;

/// The client a request's verifications count against: its API token, or
/// else its address (an IPv4 address or an IPv6 /64, as the connection
/// caps count it: a host given a /64 cannot pass for many clients).
pub struct Caller(pub Client);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Caller(Client::new(key(
            parts.extensions.get::<Principal>(),
            parts.extensions.get::<ClientAddr>(),
        ))))
    }
}

fn key(principal: Option<&Principal>, addr: Option<&ClientAddr>) -> String {
    match principal {
        Some(Principal::Token { id, .. }) => format!("token:{id}"),
        _ => addr.map_or_else(
            || "unknown".to_string(),
            |c| crate::connections::client_of(c.0.ip()).to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_one_ipv6_64_are_one_client() {
        let of = |addr: &str| key(None, Some(&ClientAddr(addr.parse().unwrap())));
        assert_eq!(of("[2001:db8::1]:1000"), of("[2001:db8::ffff:2]:2000"));
        assert_ne!(of("[2001:db8::1]:1000"), of("[2001:db8:0:1::1]:1000"));
        assert_eq!(of("[::ffff:192.0.2.1]:1"), of("192.0.2.1:2"));
        assert_ne!(of("192.0.2.1:1"), of("192.0.2.2:1"));
    }
}
