//! API tokens: 256 random bits, shown once, stored only as a hash, with a
//! name, a scope, an optional expiry, who made it, when it was last used,
//! and a revocation that holds from the moment it is recorded.
//!
//! A token reads `credhost_<id>_<secret>`: the id finds the record, the
//! secret is compared in constant time against the stored SHA-256 of it (a
//! random 256-bit secret needs no slow hash).

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::principal::{Principal, Scope};
use super::{Error, Service};
use crate::clock;
use crate::secret::Secret;

const PREFIX: &str = "credhost_";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;
pub const MAX_TOKEN_NAME_CHARS: usize = 64;
/// How stale the stored `last_used` may get; the exact time is kept in memory.
const LAST_USED_EVERY_US: i64 = 60_000_000;

/// A token as stored: nothing in it lets anyone use the token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub scope: Scope,
    /// Hex SHA-256 of the secret part.
    pub secret_sha256: String,
    pub created_us: i64,
    pub created_by: String,
    pub expires_us: Option<i64>,
    pub last_used_us: Option<i64>,
    pub revoked_us: Option<i64>,
}

impl TokenRecord {
    /// The token that made this one, if a token did.
    fn minted_by(&self) -> Option<&str> {
        Principal::token_of_label(&self.created_by)
    }

    fn state(&self, now: i64) -> &'static str {
        if self.revoked_us.is_some() {
            "revoked"
        } else if self.expires_us.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "active"
        }
    }
}

/// What the API shows of a token.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub scope: Scope,
    pub scopes: Vec<&'static str>,
    pub state: &'static str,
    pub created_at: String,
    pub created_by: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl TokenView {
    fn of(record: &TokenRecord, now: i64) -> Self {
        Self {
            id: record.id.clone(),
            name: record.name.clone(),
            scope: record.scope,
            scopes: record.scope.included(),
            state: record.state(now),
            created_at: clock::format_us(record.created_us),
            created_by: record.created_by.clone(),
            expires_at: record.expires_us.map(clock::format_us),
            last_used_at: record.last_used_us.map(clock::format_us),
            revoked_at: record.revoked_us.map(clock::format_us),
        }
    }
}

/// A token just made: the only time its secret is seen.
#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct IssuedToken {
    pub token: String,
    #[serde(flatten)]
    pub view: TokenView,
}

pub struct NewToken {
    pub name: String,
    pub scope: Scope,
    pub ttl_secs: Option<u64>,
}

/// Why a bearer token was not accepted. The API answers all of them alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefused {
    #[error("not a credhost token")]
    Malformed,
    #[error("unknown token")]
    Unknown,
    #[error("expired token")]
    Expired,
    #[error("revoked token")]
    Revoked,
}

impl TokenRefused {
    pub fn kind(self) -> &'static str {
        match self {
            TokenRefused::Malformed => "token_malformed",
            TokenRefused::Unknown => "token_unknown",
            TokenRefused::Expired => "token_expired",
            TokenRefused::Revoked => "token_revoked",
        }
    }
}

/// The token table in memory; every change is written through the store
/// first.
#[derive(Default)]
pub(super) struct Tokens {
    by_id: HashMap<String, TokenRecord>,
    /// Set when the server has a password: tokens first made without one
    /// are refused (see [`Service::close_open_mode`]).
    open_mode_closed: bool,
}

/// Why a token's line of makers stops short of its first token.
enum Broken {
    /// A maker is revoked.
    Revoked,
    /// A maker is not known here (not merged from the shared store yet).
    Unknown,
    /// It goes on past [`FOLLOWED`].
    TooLong,
}

/// Tokens in a line of makers at most: a token made by the last of such a
/// line cannot make another. Revocation follows a line down from a token,
/// and refusal up from one, so a line must be short enough to follow.
const MAX_LINEAGE: usize = 64;
/// How far a line is followed, to bound the work (ids are random, so a
/// line cannot loop): further than tokens make one now. A line made longer
/// before there was a limit is refused past this, not followed.
const FOLLOWED: usize = 4 * MAX_LINEAGE;

impl Tokens {
    pub(super) fn load(records: Vec<TokenRecord>) -> Self {
        Self {
            by_id: records.into_iter().map(|r| (r.id.clone(), r)).collect(),
            open_mode_closed: false,
        }
    }

    /// Whether `record` is refused for the tokens it came from: the one
    /// that made it, or one that made that one, is revoked (a token never
    /// outlives its maker, in expiry or revocation); or the first of them
    /// was made without a password, and the server now has one; or the
    /// line is longer than is followed.
    fn lineage_refused(&self, record: &TokenRecord) -> bool {
        match self.first_of_line(record) {
            Ok(first) => self.open_mode_closed && Self::made_in_open_mode(first),
            Err(Broken::Revoked) | Err(Broken::TooLong) => true,
            Err(Broken::Unknown) => false,
        }
    }

    /// The first token of `record`'s line (the one no token made), going
    /// up through its makers.
    fn first_of_line<'a>(&'a self, record: &'a TokenRecord) -> Result<&'a TokenRecord, Broken> {
        let mut token = record;
        for _ in 0..FOLLOWED {
            let Some(maker) = token.minted_by() else {
                return Ok(token);
            };
            let parent = self.by_id.get(maker).ok_or(Broken::Unknown)?;
            if parent.revoked_us.is_some() {
                return Err(Broken::Revoked);
            }
            token = parent;
        }
        Err(Broken::TooLong)
    }

    fn made_in_open_mode(record: &TokenRecord) -> bool {
        record.created_by == Principal::Anonymous.label()
    }

    /// How many tokens the line that ends with `id` holds, itself included
    /// (counted up to [`FOLLOWED`]).
    fn lineage_len(&self, id: &str) -> usize {
        let mut len = 0;
        let mut token = self.by_id.get(id);
        while let Some(record) = token {
            len += 1;
            if len > FOLLOWED {
                break;
            }
            token = record.minted_by().and_then(|maker| self.by_id.get(maker));
        }
        len
    }

    /// What the API shows of `record`: revoked also when it is refused for
    /// its lineage, even for a maker revoked before revocations reached
    /// what a token made.
    fn view(&self, record: &TokenRecord, now: i64) -> TokenView {
        let mut view = TokenView::of(record, now);
        if record.revoked_us.is_none() && self.lineage_refused(record) {
            view.state = "revoked";
        }
        view
    }

    /// The tokens `id` made, the ones they made, and so on, not yet
    /// revoked.
    fn made_by(&self, id: &str) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        let mut makers = vec![id.to_string()];
        for _ in 0..FOLLOWED {
            let made: Vec<String> = self
                .by_id
                .values()
                .filter(|r| r.minted_by().is_some_and(|m| makers.iter().any(|k| k == m)))
                .map(|r| r.id.clone())
                .collect();
            if made.is_empty() {
                break;
            }
            found.extend(made.iter().cloned());
            makers = made;
        }
        found.retain(|id| self.by_id.get(id).is_some_and(|r| r.revoked_us.is_none()));
        found
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Splits `credhost_<16 hex>_<43 base64url>` into its id and secret.
fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == ID_BYTES * 2 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let secret_ok = secret.len() == URL_SAFE_NO_PAD.encode([0u8; SECRET_BYTES]).len();
    (id_ok && secret_ok).then_some((id, secret))
}

/// Makes a token's record and its one-time text.
pub fn mint(new: &NewToken, by: &Principal, now: i64) -> Result<(TokenRecord, Secret), Error> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > MAX_TOKEN_NAME_CHARS {
        return Err(Error::IllegalArgument(format!(
            "a token needs a name of 1 to {MAX_TOKEN_NAME_CHARS} characters"
        )));
    }
    if new.scope > by.scope() {
        return Err(Error::IllegalArgument(format!(
            "a {} caller cannot make a token of scope {}",
            by.scope().as_str(),
            new.scope.as_str()
        )));
    }
    /// Beyond it, an expiry would pass the calendar's last year.
    const MAX_TTL_SECS: u64 = 100 * 365 * 24 * 3600;
    let asked_us = match new.ttl_secs {
        None => None,
        Some(0) => {
            return Err(Error::IllegalArgument("ttl_secs must be positive".into()));
        }
        Some(ttl) if ttl > MAX_TTL_SECS => {
            return Err(Error::IllegalArgument(format!(
                "ttl_secs must be at most {MAX_TTL_SECS} (100 years); leave it out for a token that does not expire"
            )));
        }
        Some(ttl) => Some(
            now.saturating_add(
                i64::try_from(ttl)
                    .unwrap_or(i64::MAX / 2)
                    .saturating_mul(1_000_000),
            ),
        ),
    };
    // A token that expires must not outlive itself through one it makes.
    let expires_us = match (asked_us, by.expires_us()) {
        (Some(asked), Some(own)) => Some(asked.min(own)),
        (asked, own) => asked.or(own),
    };
    let id = hex::encode(rand::random::<[u8; ID_BYTES]>());
    let secret = URL_SAFE_NO_PAD.encode(rand::random::<[u8; SECRET_BYTES]>());
    let record = TokenRecord {
        id: id.clone(),
        name: name.to_string(),
        scope: new.scope,
        secret_sha256: sha256_hex(secret.as_bytes()),
        created_us: now,
        created_by: by.label(),
        expires_us,
        last_used_us: None,
        revoked_us: None,
    };
    Ok((
        record,
        Secret::new(format!("{PREFIX}{id}_{secret}").into_bytes()),
    ))
}

impl Service {
    pub async fn create_token(&self, new: NewToken, by: &Principal) -> Result<IssuedToken, Error> {
        let now = clock::now_us();
        if let Principal::Token { id, .. } = by {
            let len = self
                .tokens
                .read()
                .expect("token table lock")
                .lineage_len(id);
            if len >= MAX_LINEAGE {
                return Err(Error::IllegalArgument(format!(
                    "this token is the last of {len} tokens each made by the one before: \
                     it cannot make another (at most {MAX_LINEAGE} in such a line); make \
                     tokens with the password, on the server's socket or with \
                     `credhost token create`"
                )));
            }
        }
        let (record, secret) = mint(&new, by, now)?;
        self.put_token(&record).await?;
        tracing::info!(token = %record.id, name = ?record.name, scope = record.scope.as_str(), by = ?by.label(), "token created");
        self.audit_event(
            "token.created",
            serde_json::json!({ "token_id": self.audit_hash(&record.id), "name": record.name,
                                "scope": record.scope, "by": by.kind() }),
        );
        Ok(IssuedToken {
            token: String::from_utf8(secret.expose().to_vec()).expect("tokens are ASCII"),
            view: TokenView::of(&record, now),
        })
    }

    pub fn tokens(&self) -> Vec<TokenView> {
        let now = clock::now_us();
        let table = self.tokens.read().expect("token table lock");
        let mut records: Vec<&TokenRecord> = table.by_id.values().collect();
        records.sort_by(|a, b| (a.created_us, &a.id).cmp(&(b.created_us, &b.id)));
        records.into_iter().map(|r| table.view(r, now)).collect()
    }

    pub fn token(&self, id: &str) -> Result<TokenView, Error> {
        let table = self.tokens.read().expect("token table lock");
        table
            .by_id
            .get(id)
            .map(|r| table.view(r, clock::now_us()))
            .ok_or(Error::TokenNotFound)
    }

    /// Merges the tokens as the shared store holds them: a revocation
    /// wins wherever it was recorded, a token this server made since the
    /// store was read stays, and the later note of a last use is kept.
    pub(super) fn merge_tokens(&self, stored: Vec<(String, String)>) {
        let mut table = self.tokens.write().expect("token table lock");
        for (_, doc) in stored {
            let Ok(mut record) = serde_json::from_str::<TokenRecord>(&doc) else {
                continue;
            };
            if let Some(mine) = table.by_id.get(&record.id) {
                record.last_used_us = record.last_used_us.max(mine.last_used_us);
                record.revoked_us = match (record.revoked_us, mine.revoked_us) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            table.by_id.insert(record.id.clone(), record);
        }
    }

    /// A bearer token, looked up in the shared store too when this server
    /// does not know it yet (it was made on another server a moment ago).
    pub async fn authenticate_token_anywhere(
        &self,
        token: &str,
    ) -> Result<Principal, TokenRefused> {
        match self.authenticate_token(token) {
            Err(TokenRefused::Unknown) if self.cluster.is_some() && self.may_reload_tokens() => {
                if let Ok(stored) = self.store(|s| s.tokens()).await {
                    self.merge_tokens(stored);
                }
                self.authenticate_token(token)
            }
            outcome => outcome,
        }
    }

    /// At most one reload for unknown tokens per 100 ms, so a flood of
    /// made-up ones cannot turn into a flood of queries.
    fn may_reload_tokens(&self) -> bool {
        const EVERY_US: i64 = 100_000;
        let now = clock::now_us();
        let last = self
            .token_reload_us
            .load(std::sync::atomic::Ordering::Relaxed);
        now - last >= EVERY_US
            && self
                .token_reload_us
                .compare_exchange(
                    last,
                    now,
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                )
                .is_ok()
    }

    /// Revokes at once, with every token it made (and they made): the next
    /// request with any of them is refused.
    pub async fn revoke_token(&self, id: &str, by: &Principal) -> Result<TokenView, Error> {
        let now = clock::now_us();
        let record = {
            let table = self.tokens.read().expect("token table lock");
            table.by_id.get(id).cloned().ok_or(Error::TokenNotFound)?
        };
        let record = self.revoke_one(record, by, None, now).await?;
        // Refused already (see `lineage_refused`); marked so, so every view
        // and every server of a cluster says so.
        let made: Vec<TokenRecord> = {
            let table = self.tokens.read().expect("token table lock");
            let ids = table.made_by(id);
            ids.iter()
                .filter_map(|id| table.by_id.get(id).cloned())
                .collect()
        };
        for made in made {
            self.revoke_one(made, by, Some(&record.id), now).await?;
        }
        Ok(TokenView::of(&record, now))
    }

    async fn revoke_one(
        &self,
        mut record: TokenRecord,
        by: &Principal,
        with: Option<&str>,
        now: i64,
    ) -> Result<TokenRecord, Error> {
        if record.revoked_us.is_some() {
            return Ok(record);
        }
        record.revoked_us = Some(now);
        self.put_token(&record).await?;
        match with {
            None => tracing::info!(token = %record.id, by = ?by.label(), "token revoked"),
            Some(maker) => tracing::info!(token = %record.id, by = ?by.label(), with = %maker,
                "token revoked with the token that made it"),
        }
        let mut event = serde_json::json!({ "token_id": self.audit_hash(&record.id),
            "name": record.name, "by": by.kind() });
        if let Some(maker) = with {
            event["with"] = serde_json::json!(self.audit_hash(maker));
        }
        self.audit_event("token.revoked", event);
        Ok(record)
    }

    /// Refuses, from now on, every token first made without a password (by
    /// a caller of the open mode, made by one, and so on): anyone who could
    /// reach the server then could have made one, and a password set since
    /// must close the server to them too.
    pub fn close_open_mode(&self) {
        let mut table = self.tokens.write().expect("token table lock");
        table.open_mode_closed = true;
        let now = clock::now_us();
        let open = (table.by_id.values())
            .filter(|r| r.revoked_us.is_none() && r.expires_us.is_none_or(|e| e > now))
            .filter(|r| table.first_of_line(r).is_ok_and(Tokens::made_in_open_mode))
            .count();
        if open > 0 {
            tracing::warn!(
                tokens = open,
                "tokens made without a password are refused now that the server has one: \
                 make new ones with the password, on the server's socket or with \
                 `credhost token create`"
            );
        }
    }

    /// The principal a bearer token stands for.
    pub fn authenticate_token(&self, token: &str) -> Result<Principal, TokenRefused> {
        let (id, secret) = parse(token).ok_or(TokenRefused::Malformed)?;
        let now = clock::now_us();
        let (principal, stale) = {
            let table = self.tokens.read().expect("token table lock");
            let record = table.by_id.get(id).ok_or(TokenRefused::Unknown)?;
            let given = sha256_hex(secret.as_bytes());
            if !bool::from(given.as_bytes().ct_eq(record.secret_sha256.as_bytes())) {
                return Err(TokenRefused::Unknown);
            }
            if record.revoked_us.is_some() || table.lineage_refused(record) {
                return Err(TokenRefused::Revoked);
            }
            if record.expires_us.is_some_and(|e| e <= now) {
                return Err(TokenRefused::Expired);
            }
            let stale = record
                .last_used_us
                .is_none_or(|t| now - t > LAST_USED_EVERY_US);
            (
                Principal::Token {
                    id: record.id.clone(),
                    name: record.name.clone(),
                    scope: record.scope,
                    expires_us: record.expires_us,
                },
                stale,
            )
        };
        if stale {
            self.touch_token(id, now);
        }
        Ok(principal)
    }

    /// Records that a token was used, at most once a minute per token, off
    /// the request's path.
    fn touch_token(&self, id: &str, now: i64) {
        let record = {
            let mut table = self.tokens.write().expect("token table lock");
            let Some(record) = table.by_id.get_mut(id) else {
                return;
            };
            if record
                .last_used_us
                .is_some_and(|t| now - t <= LAST_USED_EVERY_US)
            {
                return;
            }
            record.last_used_us = Some(now);
            record.clone()
        };
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let doc = serde_json::to_string(&record).expect("a token record serialises");
            if let Err(e) = store.put_token(&record.id, &doc) {
                tracing::warn!(token = %record.id, "cannot record the token's last use: {e}");
            }
        });
    }

    /// Writes `record` through the store, then into the table in memory.
    async fn put_token(&self, record: &TokenRecord) -> Result<(), Error> {
        self.save_token(record).await?;
        self.tokens
            .write()
            .expect("token table lock")
            .by_id
            .insert(record.id.clone(), record.clone());
        Ok(())
    }

    async fn save_token(&self, record: &TokenRecord) -> Result<(), Error> {
        let (id, doc) = (
            record.id.clone(),
            serde_json::to_string(record).expect("a token record serialises"),
        );
        self.store(move |s| s.put_token(&id, &doc)).await
    }
}

/// Makes a token while no server runs on the store: the same record and
/// the same audit event a running server writes, by the data directory's
/// owner.
pub async fn create_offline(
    store: &dyn crate::store::Store,
    audit: &crate::audit::Audit,
    new: NewToken,
) -> Result<IssuedToken, Error> {
    let now = clock::now_us();
    let by = Principal::Local;
    let (record, secret) = mint(&new, &by, now)?;
    let mut event = serde_json::Map::new();
    event.insert("time".into(), crate::audit::now().into());
    event.insert("type".into(), "event".into());
    event.insert("event".into(), "token.created".into());
    event.insert("token_id".into(), audit.hash(&record.id).into());
    event.insert("name".into(), record.name.clone().into());
    event.insert("scope".into(), record.scope.as_str().into());
    event.insert("by".into(), "local-offline".into());
    audit
        .record_durably(event)
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?;
    let doc = serde_json::to_string(&record).expect("a token record serialises");
    store.put_token(&record.id, &doc)?;
    Ok(IssuedToken {
        token: String::from_utf8(secret.expose().to_vec()).expect("tokens are ASCII"),
        view: TokenView::of(&record, now),
    })
}

/// Reads the stored token table.
pub(super) fn load_all(store: &dyn crate::store::Store) -> Result<Vec<TokenRecord>, Error> {
    store
        .tokens()?
        .into_iter()
        .map(|(id, doc)| {
            serde_json::from_str(&doc)
                .map_err(|e| Error::Store(format!("token {id} is unreadable: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_parse_and_only_their_hash_is_kept() {
        let new = NewToken {
            name: "ci".into(),
            scope: Scope::Read,
            ttl_secs: Some(60),
        };
        let (record, secret) = mint(&new, &Principal::Local, 1_000).unwrap();
        let text = String::from_utf8(secret.expose().to_vec()).unwrap();
        let (id, part) = parse(&text).unwrap();
        assert_eq!(id, record.id);
        assert_eq!(record.secret_sha256, sha256_hex(part.as_bytes()));
        assert!(!serde_json::to_string(&record).unwrap().contains(part));
        assert_eq!(record.expires_us, Some(1_000 + 60_000_000));
        assert!(parse("credhost_zz_abc").is_none());
        assert!(parse(&text[..text.len() - 1]).is_none());
    }

    #[test]
    fn a_token_is_refused_once_any_token_in_its_lineage_is_revoked() {
        let new = |name: &str| NewToken {
            name: name.into(),
            scope: Scope::Admin,
            ttl_secs: None,
        };
        let as_token = |r: &TokenRecord| Principal::Token {
            id: r.id.clone(),
            name: r.name.clone(),
            scope: r.scope,
            expires_us: r.expires_us,
        };
        let (root, _) = mint(&new("root"), &Principal::Local, 0).unwrap();
        let (child, _) = mint(&new("child name"), &as_token(&root), 0).unwrap();
        let (grandchild, _) = mint(&new("grandchild"), &as_token(&child), 0).unwrap();
        let (other, _) = mint(&new("other"), &Principal::Local, 0).unwrap();
        assert_eq!(child.minted_by(), Some(root.id.as_str()));
        assert_eq!(root.minted_by(), None);
        let mut tokens = Tokens::load(vec![
            root.clone(),
            child.clone(),
            grandchild.clone(),
            other.clone(),
        ]);
        assert!(!tokens.lineage_refused(&grandchild));
        assert_eq!(tokens.made_by(&root.id).len(), 2);
        tokens.by_id.get_mut(&root.id).unwrap().revoked_us = Some(1);
        // Refused before its own record says so (a token made while its
        // maker was being revoked, or a revocation not yet cascaded).
        assert!(tokens.lineage_refused(&child) && tokens.lineage_refused(&grandchild));
        assert!(!tokens.lineage_refused(&other));
        // And shown so, as it is refused.
        assert_eq!(tokens.view(&grandchild, 0).state, "revoked");
        assert_eq!(tokens.view(&other, 0).state, "active");
        let mut made = tokens.made_by(&root.id);
        made.sort();
        let mut expected = vec![child.id.clone(), grandchild.id.clone()];
        expected.sort();
        assert_eq!(made, expected);
        assert_eq!(tokens.lineage_len(&grandchild.id), 3);
        assert_eq!(tokens.lineage_len(&other.id), 1);
        // Made without a password, or by one that was: refused once the
        // server has a password, and shown so.
        let (open, _) = mint(&new("open"), &Principal::Anonymous, 0).unwrap();
        let (open_child, _) = mint(&new("open child"), &as_token(&open), 0).unwrap();
        for record in [&open, &open_child] {
            tokens.by_id.insert(record.id.clone(), record.clone());
        }
        assert!(!tokens.lineage_refused(&open) && !tokens.lineage_refused(&open_child));
        tokens.open_mode_closed = true;
        assert!(tokens.lineage_refused(&open) && tokens.lineage_refused(&open_child));
        assert_eq!(tokens.view(&open_child, 0).state, "revoked");
        assert!(!tokens.lineage_refused(&other));
        // A line longer than is followed (made before there was a limit)
        // is refused past it.
        let mut line = vec![mint(&new("t0"), &Principal::Local, 0).unwrap().0];
        for i in 1..=FOLLOWED {
            let maker = as_token(&line[i - 1]);
            line.push(mint(&new("t"), &maker, 0).unwrap().0);
        }
        for record in &line {
            tokens.by_id.insert(record.id.clone(), record.clone());
        }
        assert!(!tokens.lineage_refused(&line[FOLLOWED - 1]));
        assert!(tokens.lineage_refused(&line[FOLLOWED]));
    }

    #[test]
    fn a_token_makes_none_that_outlives_it() {
        let by = |expires_us| Principal::Token {
            id: "a".into(),
            name: "a".into(),
            scope: Scope::Admin,
            expires_us,
        };
        let asking = |ttl_secs| NewToken {
            name: "x".into(),
            scope: Scope::Read,
            ttl_secs,
        };
        let expiry = |new: NewToken, by: Principal| mint(&new, &by, 0).unwrap().0.expires_us;
        assert_eq!(expiry(asking(None), by(Some(5_000_000))), Some(5_000_000));
        assert_eq!(
            expiry(asking(Some(60)), by(Some(5_000_000))),
            Some(5_000_000)
        );
        assert_eq!(
            expiry(asking(Some(2)), by(Some(5_000_000))),
            Some(2_000_000)
        );
        assert_eq!(expiry(asking(Some(2)), by(None)), Some(2_000_000));
        assert_eq!(expiry(asking(None), by(None)), None);
        assert_eq!(expiry(asking(None), Principal::Local), None);
    }

    #[test]
    fn a_token_cannot_make_a_stronger_one() {
        let reader = Principal::Token {
            id: "a".into(),
            name: "r".into(),
            scope: Scope::Write,
            expires_us: None,
        };
        let new = NewToken {
            name: "x".into(),
            scope: Scope::Admin,
            ttl_secs: None,
        };
        assert!(mint(&new, &reader, 0).is_err());
        let unnamed = NewToken {
            name: " ".into(),
            scope: Scope::Read,
            ttl_secs: None,
        };
        assert!(mint(&unnamed, &Principal::Local, 0).is_err());
    }
}
