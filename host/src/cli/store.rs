//! Offline operations on a store: copying a credential set between the
//! embedded file and a shared database (rows stay sealed: they move as they
//! are, with the keys that open them), and applying schema migrations.

use crate::store::Validation;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::keys::{Kek, KeyStore, Keyring, TransportKey};
use crate::store::mysql::{RowMac, StoreOptions, StoreTls, redacted};
use crate::store::{Coordination, MysqlStore, RedbStore, Store};

#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// Copy every credential, key, token and setting from one store into an
    /// empty one, then check the copy by counting and opening every row.
    /// Stop the servers of the source first.
    Copy {
        /// `redb:DIR` (a data directory) or `mysql://user@host:port/db`.
        #[arg(long)]
        from: String,
        /// `redb:DIR` or `mysql://user@host:port/db`; must hold no credentials.
        #[arg(long)]
        to: String,
        /// The shared store's key-encryption key (default: kek.key in the
        /// redb side's directory; CREDHOST_KEK wins).
        #[arg(long)]
        kek_file: Option<PathBuf>,
        /// Plugins beyond the embedded ones, to open rows sealed by them.
        #[arg(long)]
        plugin_dir: Option<PathBuf>,
        #[command(flatten)]
        link: DatabaseLink,
    },
    /// Apply the shared database's schema migrations (servers do this at
    /// start); `--to` stops at a version, for a staged upgrade.
    Migrate {
        /// mysql://user@host:port/db (the password from CREDHOST_STORE_PASSWORD).
        store: String,
        #[arg(long)]
        to: Option<u32>,
        #[command(flatten)]
        link: DatabaseLink,
    },
}

/// How a command reaches a shared database: as a server does, over TLS
/// beyond loopback unless plaintext is allowed.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseLink {
    /// Connect to the database over TLS (never downgraded).
    #[arg(long)]
    store_tls: bool,
    /// CA certificate (PEM) the database's certificate chains to; implies
    /// --store-tls.
    #[arg(long)]
    store_tls_ca: Option<PathBuf>,
    /// Accept a plaintext link beyond loopback (anyone on the path reads
    /// the password and the rows).
    #[arg(long)]
    store_allow_plaintext: bool,
}

impl DatabaseLink {
    fn tls(&self) -> StoreTls {
        StoreTls {
            enabled: self.store_tls || self.store_tls_ca.is_some(),
            ca: self.store_tls_ca.clone(),
            skip_domain_validation: false,
        }
    }

    fn options<'a>(
        &self,
        url: &'a str,
        password: Option<&'a str>,
        tls: &'a StoreTls,
        max_connections: usize,
    ) -> anyhow::Result<StoreOptions<'a>> {
        let options = StoreOptions {
            url,
            password,
            tls,
            max_connections,
        };
        options.check_transport(self.store_allow_plaintext)?;
        Ok(options)
    }
}

enum Location {
    Redb(PathBuf),
    Mysql(String),
}

impl Location {
    fn parse(text: &str) -> anyhow::Result<Self> {
        if let Some(dir) = text.strip_prefix("redb:") {
            return Ok(Self::Redb(PathBuf::from(dir)));
        }
        if text.starts_with("mysql://") {
            return Ok(Self::Mysql(text.to_string()));
        }
        bail!(
            "{}: a store is redb:DIR or mysql://user@host:port/db",
            redacted(text)
        )
    }

    fn name(&self) -> String {
        match self {
            Self::Redb(dir) => format!("redb:{}", dir.display()),
            Self::Mysql(url) => redacted(url),
        }
    }
}

fn password() -> Option<String> {
    std::env::var("CREDHOST_STORE_PASSWORD").ok()
}

fn open_mysql(url: &str, link: &DatabaseLink) -> anyhow::Result<Arc<MysqlStore>> {
    let password = password();
    let tls = link.tls();
    let options = link.options(url, password.as_deref(), &tls, 4)?;
    Ok(Arc::new(MysqlStore::open(&options).with_context(|| {
        format!("cannot open {}", redacted(url))
    })?))
}

/// A store opened for the copy, with what opens its rows.
struct Opened {
    store: Arc<dyn Store>,
    keys: Option<Keyring>,
    transport: Option<zeroize::Zeroizing<Vec<u8>>>,
    mysql: Option<Arc<MysqlStore>>,
}

const TRANSPORT_KEY: &str = "transport_rsa";
const KEK_CHECK: &str = "kek_check";

fn open(
    location: &Location,
    link: &DatabaseLink,
    kek: &dyn Fn(bool) -> anyhow::Result<Kek>,
) -> anyhow::Result<Opened> {
    match location {
        Location::Redb(dir) => {
            crate::data_dir::prepare(dir)?;
            let store = RedbStore::open(&dir.join("credhost.redb")).with_context(|| {
                format!("cannot open {} (is a server running on it?)", dir.display())
            })?;
            let key_path = dir.join("keys.json");
            let keys = key_path
                .exists()
                .then(|| Keyring::open(&key_path))
                .transpose()?;
            let transport = std::fs::read(dir.join("rsa_key.der"))
                .ok()
                .map(zeroize::Zeroizing::new);
            Ok(Opened {
                store: Arc::new(store),
                keys,
                transport,
                mysql: None,
            })
        }
        Location::Mysql(url) => {
            let store = open_mysql(url, link)?;
            let has_keys = store.load_keys()?.current.is_some();
            let kek_now = kek(!has_keys)?;
            store.set_integrity_key(RowMac::new(kek_now.derive(crate::server::ROW_MAC)));
            let (keys, transport) = if has_keys {
                let kek = kek_now;
                let transport = match store.blob(TRANSPORT_KEY)? {
                    Some(wrapped) => Some(zeroize::Zeroizing::new(
                        kek.unwrap(TRANSPORT_KEY, &wrapped)?.expose().to_vec(),
                    )),
                    None => None,
                };
                (Some(Keyring::shared(store.clone(), kek)?), transport)
            } else {
                (None, None)
            };
            Ok(Opened {
                store: store.clone(),
                keys,
                transport,
                mysql: Some(store),
            })
        }
    }
}

const BATCH: usize = 1000;

pub async fn run(command: StoreCommand) -> anyhow::Result<()> {
    match command {
        StoreCommand::Migrate { store, to, link } => {
            let password = password();
            let tls = link.tls();
            let options = link.options(&store, password.as_deref(), &tls, 1)?;
            let db = MysqlStore::connect(&options)?;
            let target = to.unwrap_or(crate::store::mysql::schema::LATEST);
            let at = db.migrate_to(target)?;
            println!("{}: schema version {at}", redacted(&store));
            Ok(())
        }
        StoreCommand::Copy {
            from,
            to,
            kek_file,
            plugin_dir,
            link,
        } => copy(&from, &to, kek_file, plugin_dir.as_deref(), &link).await,
    }
}

async fn copy(
    from: &str,
    to: &str,
    kek_file: Option<PathBuf>,
    plugin_dir: Option<&Path>,
    link: &DatabaseLink,
) -> anyhow::Result<()> {
    let (from, to) = (Location::parse(from)?, Location::parse(to)?);
    let kek_path = kek_file.unwrap_or_else(|| match (&from, &to) {
        (Location::Redb(dir), _) | (_, Location::Redb(dir)) => dir.join("kek.key"),
        _ => PathBuf::from("kek.key"),
    });
    let kek = |may_create: bool| -> anyhow::Result<Kek> { Ok(Kek::load(&kek_path, may_create)?) };
    let source = open(&from, link, &kek)?;
    let Some(source_keys) = &source.keys else {
        bail!("{} has no keyring: nothing to copy", from.name());
    };
    let target = open(&to, link, &kek)?;
    if !target.store.scan(0, 1)?.is_empty() || target.keys.is_some() {
        bail!("{} is not empty: copy into an empty store only", to.name());
    }

    // The keys first: the rows reference them.
    match (&to, &target.mysql) {
        (Location::Mysql(_), Some(db)) => {
            let kek = kek(true)?;
            db.import_keys(&source_keys.export_wrapped(&kek))?;
            let check = kek.check_value();
            db.blob_or_insert(KEK_CHECK, &mut || check.clone().into_bytes())?;
            if let Some(der) = &source.transport {
                db.blob_or_insert(TRANSPORT_KEY, &mut || kek.wrap(TRANSPORT_KEY, der))?;
            }
        }
        (Location::Redb(dir), _) => {
            source_keys.save_new_file(&dir.join("keys.json"))?;
            if let Some(der) = &source.transport {
                TransportKey::from_der(der).map_err(anyhow::Error::msg)?;
                crate::keys::write_private(&dir.join("rsa_key.der"), der)?;
            }
        }
        _ => unreachable!("a mysql location opens a mysql store"),
    }
    for name in ["active_policy"] {
        if let Some(value) = source.store.setting(name)? {
            target.store.set_setting(name, &value)?;
        }
    }
    let mut tokens = 0;
    for (id, doc) in source.store.tokens()? {
        target.store.put_token(&id, &doc)?;
        tokens += 1;
    }
    // The counter too, so ids the source's deleted rows had stay unused.
    target.store.keep_ids_above(source.store.reserve_id()?)?;
    let mut after = 0;
    let mut rows = 0u64;
    loop {
        let batch = source.store.scan(after, BATCH)?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        target.store.import(&batch)?;
        let ids: Vec<u64> = batch.iter().map(|r| r.id).collect();
        let validations: Vec<Validation> = source
            .store
            .validations(&ids)?
            .into_iter()
            .map(|(id, doc)| Validation {
                id,
                made_on: None,
                doc,
            })
            .collect();
        target.store.put_validations(&validations)?;
        rows += batch.len() as u64;
    }

    // The check: as many rows there as here, and every one opens with the
    // keys that came along.
    let mut counted = 0u64;
    let mut after = 0;
    loop {
        let batch = target.store.scan(after, BATCH)?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        counted += batch.len() as u64;
    }
    if counted != rows {
        bail!("copied {rows} rows but {} holds {counted}", to.name());
    }
    drop(target);
    let reopened = open(&to, link, &kek)?;
    let opened = verify_open(reopened, plugin_dir).await?;
    if opened != rows {
        bail!("{opened} of {rows} rows opened in {}", to.name());
    }
    println!(
        "copied {rows} credentials and {tokens} tokens from {} to {}; every row opens",
        from.name(),
        to.name()
    );
    Ok(())
}

async fn verify_open(opened: Opened, plugin_dir: Option<&Path>) -> anyhow::Result<u64> {
    use crate::plugins::{EngineSettings, PrecompileCache, Registry, Runtime};
    let runtime = Runtime::new(
        EngineSettings::default(),
        PrecompileCache::default(),
        Default::default(),
    )
    .map_err(|e| anyhow::anyhow!("cannot start the plugin runtime: {e:#}"))?;
    let registry = Registry::load(&runtime, plugin_dir, &Default::default()).await?;
    let keys = opened.keys.context("the copy has no keyring")?;
    let service = crate::service::Service::new(
        registry,
        opened.store,
        Arc::new(keys),
        crate::service::ServiceSettings {
            targets: Default::default(),
            verify_concurrency: 1,
            policy: crate::config::Config::default().policy,
            guesses: Default::default(),
        },
    )?;
    Ok(service.open_every_row().await?)
}
