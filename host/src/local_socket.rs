//! The server's Unix socket in the data directory (`credhost.sock`, 0600):
//! the same API, for whoever owns the data directory, with no password or
//! token. It is how `credhost token create --data-dir` makes the first
//! admin token while the server runs, without the network.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::serve::Listener;
use tokio::net::{UnixListener, UnixStream};

pub const SOCKET_NAME: &str = "credhost.sock";

pub fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// Accepts only peers running as the server's own user (or root).
pub struct LocalListener {
    listener: UnixListener,
    uid: u32,
}

/// Where local requests say they come from.
const LOCAL: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    0,
));

impl LocalListener {
    /// Binds `path`, replacing a socket left by a server that is gone.
    pub fn bind(path: &Path) -> io::Result<Self> {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "{} is in use: another server runs on this data directory",
                        path.display()
                    ),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        Ok(Self { listener, uid })
    }
}

impl Listener for LocalListener {
    type Io = UnixStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    let peer = stream.peer_cred().map(|c| c.uid()).ok();
                    if peer == Some(self.uid) || peer == Some(0) {
                        return (stream, LOCAL);
                    }
                    tracing::warn!(?peer, "local socket: refused a peer of another user");
                }
                Err(e) => {
                    tracing::warn!("local socket: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(LOCAL)
    }
}
