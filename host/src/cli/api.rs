//! The CLI's way to the server: HTTPS or HTTP with a bearer token, or the
//! server's Unix socket in a data directory. Answers are obshell's envelope;
//! a failure becomes an error naming its code.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::Value;

use super::output::printable;
use crate::secret::Secret;

pub enum Transport {
    Http {
        base: String,
        token: Option<Secret>,
        http: reqwest::Client,
    },
    Local(PathBuf),
}

pub struct Api {
    transport: Transport,
}

/// What an answer said, when it was not a success.
#[derive(Debug, thiserror::Error)]
#[error("{status} {}: {}", printable(code), printable(message))]
pub struct Refused {
    pub status: u16,
    pub code: String,
    pub message: String,
}

/// Tokens and secrets cross this link: HTTPS, or HTTP only to this machine.
fn check_url(base: &str) -> anyhow::Result<()> {
    let url = reqwest::Url::parse(base).with_context(|| format!("{base} is not a URL"))?;
    let host = url.host_str().unwrap_or("");
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => bail!(
            "refusing {base}: over http:// the token and any secret sent would cross the \
             network in clear; use https:// (with --ca-file for a private CA)"
        ),
        other => bail!("{base}: the scheme is {other}, not https"),
    }
}

impl Api {
    /// `ca_file`: a PEM bundle the server's certificate may chain to, on
    /// top of the system's roots.
    pub fn http(base: &str, token: Option<Secret>, ca_file: Option<&Path>) -> anyhow::Result<Self> {
        check_url(base)?;
        let mut builder = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(600))
            // A proxy from the environment would carry plain HTTP to this
            // machine, token and all, across the network.
            .no_proxy()
            // A redirect would send the token and the body on to wherever
            // the answer points.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = ca_file {
            let pem =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|certs| !certs.is_empty())
                .with_context(|| format!("{} holds no PEM certificate", path.display()))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build()?;
        Ok(Self {
            transport: Transport::Http {
                base: base.trim_end_matches('/').to_string(),
                token,
                http,
            },
        })
    }

    pub fn local(socket: &Path) -> Self {
        Self {
            transport: Transport::Local(socket.to_path_buf()),
        }
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call("POST", path, Some(body)).await
    }

    /// Sends one request; returns the envelope's `data` (null when absent).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let (status, bytes) = match &self.transport {
            Transport::Http { base, token, http } => {
                let method = reqwest::Method::from_bytes(method.as_bytes())?;
                let mut request = http.request(method, format!("{base}{path}"));
                if let Some(token) = token {
                    let value =
                        std::str::from_utf8(token.expose()).context("the token is not text")?;
                    request = request.bearer_auth(value);
                }
                if let Some(body) = body {
                    request = request
                        .header("content-type", "application/json")
                        .body(body.to_string());
                }
                let response = request
                    .send()
                    .await
                    .with_context(|| format!("cannot reach {base}"))?;
                (response.status().as_u16(), response.bytes().await?)
            }
            Transport::Local(socket) => local_call(socket, method, path, body).await?,
        };
        let envelope: Value = serde_json::from_slice(&bytes).map_err(|_| {
            anyhow!("the server answered {status} with something other than the obshell envelope")
        })?;
        if envelope["successful"] == true {
            return Ok(envelope.get("data").cloned().unwrap_or(Value::Null));
        }
        Err(Refused {
            status,
            code: envelope["error"]["errCode"]
                .as_str()
                .unwrap_or("Unknown")
                .to_string(),
            message: envelope["error"]["message"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        }
        .into())
    }
}

async fn local_call(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Bytes)> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .with_context(|| format!("cannot connect to {}", socket.display()))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    let body = match body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            Bytes::from(body.to_string())
        }
        None => Bytes::new(),
    };
    let response = sender.send_request(request.body(Full::new(body))?).await?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}

/// Where `credhost login` keeps the URL and the token (mode 0600).
pub fn login_file() -> anyhow::Result<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "credhost")
        .context("cannot tell this user's config directory")?;
    Ok(dirs.config_dir().join("login.toml"))
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Login {
    pub url: String,
    pub token: String,
    /// The CA the login was made with, for a server with a private one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

pub fn read_login() -> anyhow::Result<Option<Login>> {
    let path = login_file()?;
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            Ok(Some(toml::from_str(&text).with_context(|| {
                format!("{} is unreadable", path.display())
            })?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

pub fn write_login(login: &Login) -> anyhow::Result<PathBuf> {
    let path = login_file()?;
    let text = toml::to_string(login)?;
    crate::keys::write_private(&path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The API a client command talks to: `--url`/`CREDHOST_URL` and
/// `CREDHOST_TOKEN`, or else what `credhost login` saved.
pub fn connect(url: Option<&str>, ca_file: Option<&Path>) -> anyhow::Result<Api> {
    let saved = read_login()?;
    let env_token = std::env::var("CREDHOST_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let (url, token, saved_ca) = match (url, saved) {
        (Some(url), saved) => {
            let saved = saved.filter(|s| s.url == url.trim_end_matches('/'));
            let saved_ca = saved.as_ref().and_then(|s| s.ca_file.clone());
            (
                url.to_string(),
                env_token.or_else(|| saved.map(|s| s.token)),
                saved_ca,
            )
        }
        (None, Some(saved)) => (saved.url, env_token.or(Some(saved.token)), saved.ca_file),
        (None, None) => {
            bail!("no server: pass --url (or set CREDHOST_URL), or run `credhost login URL` first")
        }
    };
    Api::http(
        &url,
        token.map(|t| Secret::new(t.into_bytes())),
        ca_file.or(saved_ca.as_deref()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only parsed: nothing here is dialled.
    #[test]
    fn plain_http_goes_to_this_machine_only() {
        for fine in [
            "https://credhost.example:2886",
            "https://10.0.0.5:2886",
            "http://127.0.0.1:2886",
            "http://[::1]:2886",
            "http://localhost:2886",
        ] {
            assert!(check_url(fine).is_ok(), "{fine}");
        }
        for refused in [
            "http://10.0.0.5:2886",
            "http://credhost.example",
            "http://127.0.0.1.example",
            "ftp://127.0.0.1",
            "127.0.0.1:2886",
        ] {
            assert!(check_url(refused).is_err(), "{refused}");
        }
    }
}
