//! HTTPS: TLS (rustls) in front of the same router. Handshakes run in their
//! own tasks, so a slow client cannot hold up the accept loop, and at most
//! `MAX_HANDSHAKES` at once, so slow clients cannot pile them up either;
//! one client (an IPv4 address, an IPv6 /64) holds at most
//! `MAX_HANDSHAKES_PER_CLIENT` of them, so it cannot take them all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
const MAX_HANDSHAKES: usize = 256;
const MAX_HANDSHAKES_PER_CLIENT: usize = 16;

pub struct TlsListener {
    addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

/// The certificate served and its key, read again on SIGHUP, so a renewed
/// certificate needs no restart. A handshake uses the one current when it
/// began; files that cannot be read, or do not match, leave the served
/// one as it was.
#[derive(Debug)]
pub struct Certificate {
    cert: PathBuf,
    key: PathBuf,
    current: ArcSwap<CertifiedKey>,
}

impl Certificate {
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            current: ArcSwap::from_pointee(read(cert, key)?),
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        }))
    }

    pub fn reload(&self) -> anyhow::Result<()> {
        self.current.store(Arc::new(read(&self.cert, &self.key)?));
        Ok(())
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn read(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    // The key is held to the rule of every key file kept outside the data
    // directory: whoever can read it can pass for this server.
    let key_text = crate::data_dir::read_key_file(key)
        .context("the TLS private key")?
        .with_context(|| format!("cannot read {}: no such file", key.display()))?;
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(cert).with_context(|| format!("cannot read {}", cert.display()))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .with_context(|| format!("{} holds no PEM certificate", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{} holds no PEM certificate", cert.display());
    }
    let der = rustls_pemfile::private_key(&mut key_text.as_bytes())?
        .with_context(|| format!("{} holds no PEM private key", key.display()))?;
    CertifiedKey::from_der(certs, der, &rustls::crypto::ring::default_provider()).with_context(
        || {
            format!(
                "{} and {} are not a certificate and its key",
                cert.display(),
                key.display()
            )
        },
    )
}

impl TlsListener {
    /// The handshake caps for the listeners of one service, to share.
    pub fn handshake_caps() -> crate::connections::Caps {
        crate::connections::Caps::new(MAX_HANDSHAKES, MAX_HANDSHAKES_PER_CLIENT)
    }

    pub fn new(
        listener: TcpListener,
        certificate: Arc<Certificate>,
        handshakes: crate::connections::Caps,
    ) -> anyhow::Result<Self> {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certificate);
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let addr = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                let admitted = match handshakes.admit(peer.ip()) {
                    Ok(admitted) => admitted,
                    Err(crate::connections::Over::Client) => {
                        tracing::debug!(%peer, "connection refused: too many TLS handshakes from it");
                        crate::connections::refused("handshakes_per_client");
                        continue;
                    }
                    Err(crate::connections::Over::Total) => {
                        tracing::debug!(%peer, "connection refused: too many TLS handshakes");
                        crate::connections::refused("handshakes");
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _held = admitted;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { addr, ready })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept task never ends while the listener lives.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}
