//! The API's TCP sockets. On loopback the server takes both loopback
//! addresses, 127.0.0.1 and ::1, on the same port: clients that ask for
//! `localhost` try ::1 first, and an address the server left free could be
//! taken by any local user, who would then receive their passwords and
//! tokens.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::TcpListener;

/// Tries for a port both loopback addresses have free, when any port will do.
const PAIR_ATTEMPTS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error(
        "{0} is taken by another process: clients of `localhost:{port}` would reach it instead \
         of this server (and hand it their passwords and tokens). Stop it, or listen on another \
         port",
        port = .0.port()
    )]
    TwinTaken(SocketAddr),
}

/// The API's listener on `listen`, and on loopback its twin on the other
/// loopback address (none when this machine has no such address).
pub async fn bind(listen: SocketAddr) -> Result<(TcpListener, Option<TcpListener>), ListenError> {
    let attempts = if listen.port() == 0 { PAIR_ATTEMPTS } else { 1 };
    for attempt in 1..=attempts {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| ListenError::Bind(listen, e))?;
        let bound = listener
            .local_addr()
            .map_err(|e| ListenError::Bind(listen, e))?;
        let Some(twin) = twin_of(bound) else {
            return Ok((listener, None));
        };
        match TcpListener::bind(twin).await {
            Ok(other) => return Ok((listener, Some(other))),
            // No IPv6 (or no IPv4) loopback here: nobody can take it either.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::AddrNotAvailable | ErrorKind::Unsupported
                ) || e.raw_os_error() == Some(libc::EAFNOSUPPORT) =>
            {
                return Ok((listener, None));
            }
            Err(e) if e.kind() == ErrorKind::AddrInUse && attempt < attempts => continue,
            Err(e) if e.kind() == ErrorKind::AddrInUse => return Err(ListenError::TwinTaken(twin)),
            Err(e) => return Err(ListenError::Bind(twin, e)),
        }
    }
    unreachable!("the last attempt returns")
}

/// The other loopback address on the same port, for the two that
/// `localhost` names. Every IPv4 address (`0.0.0.0`) includes 127.0.0.1 but
/// leaves ::1 free, for any local user to take.
fn twin_of(addr: SocketAddr) -> Option<SocketAddr> {
    let other = match addr.ip() {
        IpAddr::V4(ip) if ip == Ipv4Addr::LOCALHOST || ip.is_unspecified() => {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        }
        IpAddr::V6(ip) if ip == Ipv6Addr::LOCALHOST => IpAddr::V4(Ipv4Addr::LOCALHOST),
        _ => return None,
    };
    Some(SocketAddr::new(other, addr.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_is_taken_whole() {
        let at = |text: &str| text.parse::<SocketAddr>().unwrap();
        assert_eq!(twin_of(at("127.0.0.1:2886")), Some(at("[::1]:2886")));
        assert_eq!(twin_of(at("[::1]:2886")), Some(at("127.0.0.1:2886")));
        assert_eq!(twin_of(at("127.0.0.2:2886")), None);
        assert_eq!(twin_of(at("0.0.0.0:2886")), Some(at("[::1]:2886")));
        assert_eq!(twin_of(at("[::]:2886")), None);
    }
}
