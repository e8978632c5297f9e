//! A loaded verifier plugin: one target type, called in a fresh sandbox each
//! time, whatever contract version it was built against. What a plugin
//! answers is checked against the contract here, and adapted to the host's
//! own types in one place per version.

use std::net::IpAddr;
use std::sync::Arc;

use futures::future::join_all;
use wasmtime::Store;
use wasmtime::component::Component;

use super::bindings::{v0_1, v0_2, v0_3};
use super::contract::Version;
use super::error::PluginError;
use super::interfaces::{
    Calls0_1, Calls0_2, Calls0_3, Verification0_1, Verification0_2, Verification0_3,
};
use super::json_object::check_object;
use super::limits::Limits;
use super::runtime::{CallLabel, Runtime, Work};
use super::state::CallState;
use super::types::{
    Detail, Endpoint, Normalized, PluginMeta, Purpose, Reason, Refusal, RefusalCode, Scrubber,
    SecretChange, Target, VerifierInfo, cut,
};
use crate::budget::Client;
use crate::capabilities::log::LogBudget;
use crate::capabilities::ssh::wit_0_3;
use crate::capabilities::{Grant, HostKeys};
use crate::secret::Secret;

use v0_1::verifier::exports::credhost::plugin::verification as wit1;
use v0_2::verifier::exports::credhost::plugin::verification as wit2;
use v0_3::verifier::exports::credhost::plugin::verification as wit3;

/// How many asks (contract 0.3) the host answers in one call.
const MAX_ASKS: usize = 4;

/// What one round of a 0.3 call came back with.
enum Step<T> {
    Done(T),
    Ask(wit3::Ask),
}

/// A 0.3 call to its end: each round is `$round` (an expression that may
/// use `$work`, `$answers`, the answers so far or `None`, and `$limits`,
/// the plugin's limits with what is left of the call's deadline) in a fresh
/// instance; an ask is answered with what the call's work is lent, and the
/// export called again. The call holds one slot of its budget throughout,
/// as a 0.2 call holds it while an import works, and its deadline covers
/// every round and every ask's work. A macro, not a method taking a
/// closure: the futures of nested async closures over borrowed data are
/// not provably `Send`.
macro_rules! with_asks {
    ($plugin:expr, $first:expr, |$work:ident, $answers:ident, $limits:ident| $round:expr) => {
        async {
            let plugin = $plugin;
            let full = plugin.meta.limits;
            let first: Work = $first;
            let _admitted = plugin.runtime.admit(&first, &full).await?;
            let until = tokio::time::Instant::now() + full.deadline();
            let deadline = || PluginError::Deadline {
                plugin: plugin.meta.name.clone(),
                limit: full.deadline(),
            };
            let $work = Work::Admitted(std::sync::Arc::new(first));
            let mut answered: Vec<wit3::Answer> = Vec::new();
            loop {
                // The first round has the whole deadline, which `until`
                // was just set from: no need to read the clock again.
                let left = if answered.is_empty() {
                    full.deadline()
                } else {
                    until.saturating_duration_since(tokio::time::Instant::now())
                };
                if left.is_zero() {
                    return Err(deadline());
                }
                let $limits = Limits {
                    deadline_ms: (left.as_millis() as u64).max(1),
                    ..full
                };
                let step: Result<Step<_>, PluginError> = async {
                    // `none` on a first round, which is most: an empty
                    // list would cost the plugin an allocation.
                    let $answers = (!answered.is_empty()).then_some(answered.as_slice());
                    Ok($round)
                }
                .await;
                match step {
                    Ok(Step::Done(value)) => return Ok(value),
                    // A later round's limit is what was left: the error
                    // names the call's own.
                    Err(PluginError::Deadline { .. }) => return Err(deadline()),
                    Err(e) => return Err(e),
                    Ok(Step::Ask(_)) if answered.len() == MAX_ASKS => {
                        return Err(
                            plugin.broke(format!("asked more than {MAX_ASKS} times in one call"))
                        );
                    }
                    Ok(Step::Ask(ask)) => {
                        let (ask, target) = wit_0_3::ask(ask);
                        let lent = plugin.runtime.lend(&$work);
                        let Ok(answer) = tokio::time::timeout_at(until, lent.answer(ask)).await
                        else {
                            return Err(deadline());
                        };
                        answered.push(wit_0_3::answer(answer, target));
                    }
                }
            }
        }
        .await
    };
}

/// The bytes of an ask, held to the same cap as any answer.
fn ask_size(ask: &wit3::Ask) -> usize {
    use v0_3::verifier::credhost::plugin::ssh::{PrivateKey, Proof};
    let key = |k: &PrivateKey| k.text.len() + k.passphrase.as_ref().map_or(0, String::len);
    match ask {
        wit3::Ask::Login(login) => {
            login.target.ip.len()
                + login.username.len()
                + match &login.proof {
                    Proof::Password(p) => p.len(),
                    Proof::Key(k) => key(k),
                }
        }
        wit3::Ask::KeyFacts(k) => key(k),
    }
}

/// A descriptor of 0.2 or later (the same record in each package), in
/// one type, with its size as the output cap counts it.
macro_rules! described {
    ($d:expr) => {{
        let d = $d;
        Described {
            target_type: d.target_type,
            property_field: d.property_field,
            public_field: d.public_field,
            name: d.name,
            version: d.version,
            property_schema: d.property_schema,
            public_schema: d.public_schema,
            validation_failed_code: d.validation_failed_code,
            validation_failed_message: d.validation_failed_message,
        }
    }};
}

/// `describe` of a typed contract, held to its promises.
macro_rules! describe_typed {
    ($plugin:ident, $set:ident, $call:ident) => {{
        let d = $plugin
            .$call(
                $set,
                "describe",
                &$plugin.meta.limits,
                Work::Quick(Client::server()),
                &Scrubber::for_nothing,
                async |g, s| g.call_describe(s).await,
                described_size!(),
            )
            .await?;
        $plugin.typed_info(described!(d))?
    }};
}

macro_rules! described_size {
    () => {
        |d| {
            d.target_type.len()
                + d.property_field.len()
                + d.public_field.len()
                + d.name.len()
                + d.version.len()
                + d.property_schema.len()
                + d.public_schema.len()
                + d.validation_failed_code.len()
                + d.validation_failed_message.len()
        }
    };
}

/// The host's purpose as a typed contract's.
macro_rules! typed_purpose {
    ($wit:ident, $purpose:expr) => {
        match $purpose {
            Purpose::Create => $wit::Purpose::Create,
            Purpose::Update => $wit::Purpose::Update,
            Purpose::Validate => $wit::Purpose::Validate,
        }
    };
}

/// The bytes of a typed contract's `normalize` answer.
macro_rules! normalize_size {
    ($wit:ident, $answer:expr) => {
        match $answer {
            Err(r) => r.message.len(),
            Ok(n) => normalized_size(
                &n.public,
                &n.search_terms,
                n.targets.iter().map(|t| t.ip.len()),
                match &n.secret {
                    $wit::Secret::Keep => 0,
                    $wit::Secret::Replace(b) => b.len(),
                },
            ),
        }
    };
}

/// A 0.3 export's answer, round by round: its own answer or an ask.
trait Round {
    type Answer;
    /// Its bytes, as the output cap counts them.
    fn size(&self) -> usize;
    fn step(self) -> Step<Self::Answer>;
}

impl Round for wit3::NormalizeStep {
    type Answer = Result<wit3::Normalized, wit3::Refusal>;

    fn size(&self) -> usize {
        match self {
            wit3::NormalizeStep::Done(answer) => normalize_size!(wit3, answer),
            wit3::NormalizeStep::Ask(ask) => ask_size(ask),
        }
    }

    fn step(self) -> Step<Self::Answer> {
        match self {
            wit3::NormalizeStep::Done(answer) => Step::Done(answer),
            wit3::NormalizeStep::Ask(ask) => Step::Ask(ask),
        }
    }
}

impl Round for wit3::VerifyStep {
    type Answer = wit3::Verdict;

    fn size(&self) -> usize {
        match self {
            wit3::VerifyStep::Done(verdict) => verdict.message.len() + 8,
            wit3::VerifyStep::Ask(ask) => ask_size(ask),
        }
    }

    fn step(self) -> Step<Self::Answer> {
        match self {
            wit3::VerifyStep::Done(verdict) => Step::Done(verdict),
            wit3::VerifyStep::Ask(ask) => Step::Ask(ask),
        }
    }
}

/// The secret a `normalize` answer replaces the stored one with, if any.
macro_rules! answered_secret {
    ($wit:ident, $answer:expr) => {
        match $answer {
            Some(Ok($wit::Normalized {
                secret: $wit::Secret::Replace(bytes),
                ..
            })) => Some(bytes.as_slice()),
            _ => None,
        }
    };
}

/// A typed contract's `normalize` answer in the host's terms.
macro_rules! typed_answer {
    ($version:ident, $wit:ident, $answer:expr) => {
        $answer
            .map(|n| Answer {
                public: n.public,
                secret: match n.secret {
                    $wit::Secret::Keep => SecretChange::Keep,
                    $wit::Secret::Replace(b) => SecretChange::Replace(Secret::new(b)),
                },
                targets: n.targets.into_iter().map(|t| (t.ip, t.port)).collect(),
                search_terms: n.search_terms,
            })
            .map_err(|r| {
                use $version::verifier::credhost::plugin::types::RefusalCode as C;
                Refusal {
                    code: match r.code {
                        C::BindJsonFailed => RefusalCode::BindJsonFailed,
                        C::IllegalArgument => RefusalCode::IllegalArgument,
                        C::InvalidIp => RefusalCode::InvalidIp,
                        C::InvalidPort => RefusalCode::InvalidPort,
                        C::AuthTypeNotSupported => RefusalCode::AuthTypeNotSupported,
                        C::Other => RefusalCode::Other,
                    },
                    message: r.message,
                }
            })
    };
}

struct Described {
    target_type: String,
    property_field: String,
    public_field: String,
    name: String,
    version: String,
    property_schema: String,
    public_schema: String,
    validation_failed_code: String,
    validation_failed_message: String,
}

/// The same call for each version: instantiate, then `f` on the
/// `verification` export.
macro_rules! calls_of {
    ($(#[$doc:meta])* $name:ident, $set:ty, $calls:ident) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        async fn $name<T>(
            &self,
            set: &$set,
            export: &'static str,
            limits: &Limits,
            work: Work,
            mask: &(dyn Fn(Option<&T>) -> Scrubber + Sync),
            f: impl AsyncFnOnce(&$calls<'_>, &mut Store<CallState>) -> wasmtime::Result<T>,
            size: impl FnOnce(&T) -> usize,
        ) -> Result<T, PluginError> {
            self.runtime
                .call(
                    &self.label,
                    export,
                    limits,
                    work,
                    mask,
                    async |store| {
                        let calls = set.instantiate(&mut *store).await?;
                        f(&calls, store).await
                    },
                    size,
                )
                .await
        }
    };
}

/// The message of a target a verification was not to reach.
const NOT_DIALLED: &str = "not dialled";

const VERIFIER_EXPORTS: [&str; 4] = ["describe", "normalize", "verify", "verify-target"];

enum Pre {
    V0_1(Verification0_1),
    V0_2(Verification0_2),
    V0_3(Verification0_3),
}

pub struct VerifierPlugin {
    pub meta: PluginMeta,
    pub info: VerifierInfo,
    label: CallLabel,
    pre: Pre,
    runtime: Arc<Runtime>,
}

/// What `normalize` returned, before the host checks it.
struct Answer {
    public: String,
    secret: SecretChange,
    targets: Vec<(String, u16)>,
    search_terms: Vec<String>,
}

fn object(text: &str, what: &str) -> Result<serde_json::Value, String> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value @ serde_json::Value::Object(_)) => Ok(value),
        Ok(_) => Err(format!("{what} is not a JSON object")),
        Err(e) => Err(format!("{what} is not JSON: {e}")),
    }
}

/// Codes a verifier names for failed verifications: `A.B.C`, nothing else.
fn plausible_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 128
        && code
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()))
}

impl VerifierPlugin {
    /// Links `component` (built against `version`) and asks it who it is.
    pub async fn load(
        runtime: Arc<Runtime>,
        component: &Component,
        version: Version,
        mut meta: PluginMeta,
    ) -> Result<Self, PluginError> {
        let load_error = |reason: String| PluginError::Load {
            source_name: meta.name.clone(),
            reason,
        };
        let pre = match version {
            Version::V0_1 => runtime
                .linkers
                .verifier_v0_1
                .instantiate_pre(component)
                .and_then(Verification0_1::find)
                .map(Pre::V0_1),
            Version::V0_2 => runtime
                .linkers
                .verifier_v0_2
                .instantiate_pre(component)
                .and_then(Verification0_2::find)
                .map(Pre::V0_2),
            Version::V0_3 => runtime
                .linkers
                .verifier_v0_3
                .instantiate_pre(component)
                .and_then(Verification0_3::find)
                .map(Pre::V0_3),
        }
        .map_err(|e| load_error(format!("{e:#}")))?;
        meta.wit = version.package();
        let mut plugin = Self {
            label: CallLabel::new(&meta.name, &VERIFIER_EXPORTS),
            meta: meta.clone(),
            info: VerifierInfo {
                target_type: String::new(),
                property_field: String::new(),
                public_field: String::new(),
                property_schema: serde_json::Value::Null,
                public_schema: serde_json::Value::Null,
                validation_failed_code: String::new(),
                validation_failed_message: String::new(),
            },
            pre,
            runtime,
        };
        let (info, name, plugin_version) = plugin.describe().await?;
        meta.name = name;
        meta.version = plugin_version;
        plugin.label = CallLabel::new(&meta.name, &VERIFIER_EXPORTS);
        plugin.meta = meta;
        plugin.info = info;
        Ok(plugin)
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.meta.limits = limits;
        self
    }

    fn broke(&self, reason: impl Into<String>) -> PluginError {
        PluginError::Contract {
            plugin: self.meta.name.clone(),
            reason: reason.into(),
        }
    }

    calls_of!(
        /// One call of a 0.1 plugin's `verification` export, in a fresh instance.
        call_0_1,
        Verification0_1,
        Calls0_1
    );
    calls_of!(
        /// One call of a 0.2 plugin's `verification` export, in a fresh instance.
        call_0_2,
        Verification0_2,
        Calls0_2
    );
    calls_of!(
        /// One call of a 0.3 plugin's `verification` export, in a fresh instance.
        call_0_3,
        Verification0_3,
        Calls0_3
    );

    /// One round of a 0.3 call: the export called, what it returned
    /// counted against the output cap and taken as its answer or an ask.
    async fn round_0_3<R: Round>(
        &self,
        set: &Verification0_3,
        export: &'static str,
        limits: &Limits,
        work: Work,
        mask: &(dyn Fn(Option<&R>) -> Scrubber + Sync),
        f: impl AsyncFnOnce(&Calls0_3<'_>, &mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<Step<R::Answer>, PluginError> {
        self.call_0_3(set, export, limits, work, mask, f, R::size)
            .await
            .map(R::step)
    }

    async fn describe(&self) -> Result<(VerifierInfo, String, String), PluginError> {
        let (info, name, version) = match &self.pre {
            Pre::V0_1(set) => {
                let d = self
                    .call_0_1(
                        set,
                        "describe",
                        &self.meta.limits,
                        Work::Quick(Client::server()),
                        &Scrubber::for_nothing,
                        async |g, s| g.call_describe(s).await,
                        |d| {
                            d.target_type.len()
                                + d.property_field.len()
                                + d.public_field.len()
                                + d.name.len()
                                + d.version.len()
                        },
                    )
                    .await?;
                let info = VerifierInfo {
                    target_type: d.target_type,
                    property_field: d.property_field,
                    public_field: d.public_field,
                    property_schema: serde_json::json!({ "type": "object" }),
                    public_schema: serde_json::json!({ "type": "object" }),
                    validation_failed_code: "Credential.ValidationFailed".into(),
                    validation_failed_message: "Credential validation failed".into(),
                };
                (info, d.name, d.version)
            }
            Pre::V0_2(set) => describe_typed!(self, set, call_0_2),
            Pre::V0_3(set) => describe_typed!(self, set, call_0_3),
        };
        if info.target_type.is_empty()
            || info.property_field.is_empty()
            || info.public_field.is_empty()
        {
            return Err(PluginError::Load {
                source_name: self.meta.name.clone(),
                reason: "describe() left target-type or a field name empty".into(),
            });
        }
        Ok((info, name, version))
    }

    /// A 0.2-or-later descriptor held to the contract: schemas that are
    /// JSON objects and an error code that looks like one.
    fn typed_info(&self, d: Described) -> Result<(VerifierInfo, String, String), PluginError> {
        let property_schema = object(&d.property_schema, "describe()'s property-schema")
            .map_err(|e| self.broke(e))?;
        let public_schema =
            object(&d.public_schema, "describe()'s public-schema").map_err(|e| self.broke(e))?;
        if !plausible_code(&d.validation_failed_code) {
            return Err(self.broke(format!(
                "describe()'s validation-failed-code {:?} is not an error code like Credential.SSH.ValidationFailed",
                d.validation_failed_code
            )));
        }
        let info = VerifierInfo {
            target_type: d.target_type,
            property_field: d.property_field,
            public_field: d.public_field,
            property_schema,
            public_schema,
            validation_failed_code: d.validation_failed_code,
            validation_failed_message: d.validation_failed_message,
        };
        Ok((info, d.name, d.version))
    }

    /// [`Self::normalize_for`] the server itself.
    pub async fn normalize(
        &self,
        property: &str,
        purpose: Purpose,
        stored: Option<&str>,
    ) -> Result<Result<Normalized, Refusal>, PluginError> {
        self.normalize_for(&Client::server(), property, purpose, stored)
            .await
    }

    /// Validates and canonicalises a request's property for `client`;
    /// `stored` is the public part stored now, on update. The outer error
    /// is the plugin failing; the inner one is the plugin refusing the input.
    pub async fn normalize_for(
        &self,
        client: &Client,
        property: &str,
        purpose: Purpose,
        stored: Option<&str>,
    ) -> Result<Result<Normalized, Refusal>, PluginError> {
        // What it logs and how it refuses are logged and answered: the
        // secrets the property holds are masked in both.
        let mask = |answered: Option<&[u8]>| {
            Scrubber::of_normalize(property, &self.info.property_schema, answered)
        };
        let answer = match &self.pre {
            Pre::V0_1(set) => {
                let purpose = match purpose {
                    Purpose::Create => wit1::Purpose::Create,
                    Purpose::Update => wit1::Purpose::Update,
                    Purpose::Validate => wit1::Purpose::Validate,
                };
                let answer = self
                    .call_0_1(
                        set,
                        "normalize",
                        &self.meta.limits,
                        Work::Quick(client.clone()),
                        &|a| mask(answered_secret!(wit1, a)),
                        async |g, s| g.call_normalize(s, property, purpose).await,
                        |a| match a {
                            Err(r) => r.code.len() + r.message.len(),
                            Ok(n) => normalized_size(
                                &n.public,
                                &n.search_terms,
                                n.targets.iter().map(|t| t.ip.len()),
                                match &n.secret {
                                    wit1::Secret::Keep => 0,
                                    wit1::Secret::Replace(b) => b.len(),
                                },
                            ),
                        },
                    )
                    .await?;
                answer
                    .map(|n| Answer {
                        public: n.public,
                        secret: match n.secret {
                            wit1::Secret::Keep => SecretChange::Keep,
                            wit1::Secret::Replace(b) => SecretChange::Replace(Secret::new(b)),
                        },
                        targets: n.targets.into_iter().map(|t| (t.ip, t.port)).collect(),
                        search_terms: n.search_terms,
                    })
                    .map_err(|r| Refusal {
                        code: RefusalCode::from_obshell(&r.code),
                        message: r.message,
                    })
            }
            Pre::V0_2(set) => {
                let purpose = typed_purpose!(wit2, purpose);
                let answer = self
                    .call_0_2(
                        set,
                        "normalize",
                        &self.meta.limits,
                        Work::Quick(client.clone()),
                        &|a| mask(answered_secret!(wit2, a)),
                        async |g, s| g.call_normalize(s, property, purpose, stored).await,
                        |a| normalize_size!(wit2, a),
                    )
                    .await?;
                typed_answer!(v0_2, wit2, answer)
            }
            Pre::V0_3(set) => {
                let purpose = typed_purpose!(wit3, purpose);
                let answer: Result<_, PluginError> = with_asks!(
                    self,
                    Work::Quick(client.clone()),
                    |work, answers, limits| {
                        self.round_0_3(
                            set,
                            "normalize",
                            &limits,
                            work.clone(),
                            &|a| match a {
                                Some(wit3::NormalizeStep::Done(answer)) => {
                                    mask(answered_secret!(wit3, Some(answer)))
                                }
                                Some(wit3::NormalizeStep::Ask(_)) => Scrubber::dropping(),
                                None => mask(None),
                            },
                            async move |g, s| {
                                g.call_normalize(s, property, purpose, stored, answers)
                                    .await
                            },
                        )
                        .await?
                    }
                );
                let answer = answer?;
                typed_answer!(v0_3, wit3, answer)
            }
        };
        match answer {
            // A refusal is answered and logged: what the property holds
            // of a secret is masked in it, should the plugin quote it.
            Err(refusal) => Ok(Err(Refusal {
                message: cut(mask(None).apply(refusal.message)),
                ..refusal
            })),
            Ok(answer) => self.adopt(answer, purpose, property).map(Ok),
        }
    }

    /// Holds what `normalize` returned to the contract's promises.
    fn adopt(
        &self,
        answer: Answer,
        purpose: Purpose,
        property: &str,
    ) -> Result<Normalized, PluginError> {
        check_object(&answer.public, "normalize's public part").map_err(|e| self.broke(e))?;
        if matches!(answer.secret, SecretChange::Keep) && purpose != Purpose::Update {
            return Err(self.broke(
                "normalize answered keep for the secret of a request that has none stored",
            ));
        }
        if answer.targets.is_empty() {
            return Err(self.broke("normalize returned no targets"));
        }
        let targets = answer
            .targets
            .iter()
            .map(|(ip, port)| {
                let ip: IpAddr = ip.parse().map_err(|_| {
                    // Quoted without what the property holds: the
                    // plugin had the secret in it.
                    let ip = quoted(Scrubber::of(property.as_bytes()).apply(ip.clone()));
                    self.broke(format!(
                        "normalize returned a target that is not an IP: {ip:?}"
                    ))
                })?;
                Ok(Target {
                    ip: ip.to_canonical(),
                    port: *port,
                })
            })
            .collect::<Result<Vec<_>, PluginError>>()?;
        Ok(Normalized {
            public: answer.public,
            secret: answer.secret,
            targets,
            search_terms: answer.search_terms,
        })
    }

    /// Proves a credential on its targets, for `client`. A 0.2 or 0.3
    /// plugin is called once per target, all at once, each call granted
    /// that target only; a 0.1 plugin once, granted them all.
    pub async fn verify(
        &self,
        public: &str,
        secret: &Secret,
        targets: &[Target],
        host_keys: &HostKeys,
        client: &Client,
    ) -> Result<Vec<Detail>, PluginError> {
        let dial = vec![true; targets.len()];
        self.verify_dialling(public, secret, targets, &dial, host_keys, client)
            .await
    }

    /// As [`Self::verify`], but only the targets marked in `dial` are
    /// reached; the others answer `NOT_GRANTED` with nothing sent (a 0.2 or
    /// 0.3 plugin is not even called for them).
    pub async fn verify_dialling(
        &self,
        public: &str,
        secret: &Secret,
        targets: &[Target],
        dial: &[bool],
        host_keys: &HostKeys,
        client: &Client,
    ) -> Result<Vec<Detail>, PluginError> {
        let dialled: Vec<Target> = targets
            .iter()
            .zip(dial)
            .filter(|(_, dial)| **dial)
            .map(|(t, _)| *t)
            .collect();
        let scrubber = Arc::new(Scrubber::of(secret.expose()));
        // What the verification's calls share: the host keys, the keys read,
        // the masking of its secret, the log budget (a typed plugin's call
        // per target narrows it to its target: see `Grant::narrowed_to`).
        let grant = Grant::for_targets(&dialled, host_keys.clone())
            .scrubbing(scrubber.clone())
            .logging_into(LogBudget::verification());
        match &self.pre {
            Pre::V0_1(set) => {
                let work = Work::Verify {
                    grant,
                    client: client.clone(),
                    patient: false,
                };
                let details = self
                    .call_0_1(
                        set,
                        "verify",
                        &self.meta.limits,
                        work,
                        // Its lines were masked as they were logged.
                        &Scrubber::for_nothing,
                        async |g, s| g.call_verify(s, public, secret.expose()).await,
                        |ds| {
                            ds.iter()
                                .map(|d| {
                                    d.target.ip.len()
                                        + d.connection_result.len()
                                        + d.message.len()
                                        + 8
                                })
                                .sum()
                        },
                    )
                    .await?;
                self.adopt_0_1(details, targets, &scrubber)
            }
            Pre::V0_2(set) => {
                let secret = secret.expose();
                self.fan_out(targets, dial, client, &grant, |target, work| async move {
                    let target = v0_2::verifier::credhost::plugin::types::Target {
                        ip: target.ip.to_string(),
                        port: target.port,
                    };
                    let v = self
                        .call_0_2(
                            set,
                            "verify-target",
                            &self.meta.limits,
                            work,
                            &Scrubber::for_nothing,
                            async move |g, s| {
                                g.call_verify_target(s, public, secret, &target).await
                            },
                            |v| v.message.len() + 8,
                        )
                        .await?;
                    Ok((reason_0_2(v.reason), v.message))
                })
                .await
            }
            Pre::V0_3(set) => {
                let secret = secret.expose();
                self.fan_out(targets, dial, client, &grant, |target, work| async move {
                    let target = v0_3::verifier::credhost::plugin::types::Target {
                        ip: target.ip.to_string(),
                        port: target.port,
                    };
                    let v: Result<_, PluginError> =
                        with_asks!(self, work, |work, answers, limits| {
                            let target = &target;
                            self.round_0_3(
                                set,
                                "verify-target",
                                &limits,
                                work.clone(),
                                &Scrubber::for_nothing,
                                async move |g, s| {
                                    g.call_verify_target(s, public, secret, target, answers)
                                        .await
                                },
                            )
                            .await?
                        });
                    let v = v?;
                    Ok((reason_0_3(v.reason), v.message))
                })
                .await
            }
        }
    }

    /// A typed plugin's verification: `verify_target` for every target at
    /// once, each call granted that target only, except those `dial`
    /// leaves out. The first call dialled is admitted as any request is (or
    /// refused 503) before any call starts, so a refused request dialled
    /// nothing; the others of the same credential wait for an instance
    /// within their deadline.
    async fn fan_out<F>(
        &self,
        targets: &[Target],
        dial: &[bool],
        client: &Client,
        grant: &Grant,
        verify_target: impl Fn(Target, Work) -> F,
    ) -> Result<Vec<Detail>, PluginError>
    where
        F: std::future::Future<Output = Result<(Reason, String), PluginError>>,
    {
        let verify_target = &verify_target;
        let work_for = |target: &Target, patient: bool| Work::Verify {
            grant: grant.narrowed_to(std::net::SocketAddr::new(target.ip, target.port)),
            client: client.clone(),
            patient,
        };
        // The first call dialled is admitted as a request is (see
        // `patient`), and before any other starts: a request refused for
        // want of an instance must have sent its secret nowhere.
        let first = dial.iter().position(|dial| *dial);
        let mut first_admitted = match first {
            Some(i) => {
                let work = work_for(&targets[i], false);
                let admission = self.runtime.admit(&work, &self.meta.limits).await?;
                Some((admission, Work::Admitted(Arc::new(work))))
            }
            None => None,
        };
        let calls = targets.iter().enumerate().map(|(i, target)| {
            let admitted = (Some(i) == first).then(|| first_admitted.take()).flatten();
            async move {
                if !dial[i] {
                    return (target, Ok((Reason::NotGranted, NOT_DIALLED.to_string())));
                }
                let verdict = match admitted {
                    Some((_admission, work)) => verify_target(*target, work).await,
                    None => verify_target(*target, work_for(target, true)).await,
                };
                (target, verdict)
            }
        });
        let mut details = Vec::with_capacity(targets.len());
        for (target, verdict) in join_all(calls).await {
            let (reason, message) = match verdict {
                Ok(verdict) => verdict,
                Err(e) => (Reason::Other, e.to_string()),
            };
            let message = grant.scrub(message);
            details.push(Detail::new(Endpoint::from(*target), reason, message));
        }
        Ok(details)
    }

    /// A 0.1 plugin's details: one per target, in target order, and a
    /// `connection-result` that says what the reason says.
    fn adopt_0_1(
        &self,
        details: Vec<wit1::Detail>,
        targets: &[Target],
        scrubber: &Scrubber,
    ) -> Result<Vec<Detail>, PluginError> {
        if details.len() != targets.len() {
            return Err(self.broke(format!(
                "verify answered for {} of {} targets",
                details.len(),
                targets.len()
            )));
        }
        // The verdicts are taken as the targets', in order (the host counts
        // each against its target, see `service::guesses`): a 0.1 plugin
        // may name a target it could not read as `{"ip": "", "port": 0}`,
        // as obshell does.
        details
            .into_iter()
            .map(|d| {
                let reason = reason_0_1(d.reason);
                let said_success = d.connection_result == "SUCCESS";
                if said_success != (reason == Reason::Ok) {
                    return Err(self.broke(format!(
                        "verify said connection-result {:?} with reason {}",
                        quoted(scrubber.apply(d.connection_result)),
                        reason.as_str()
                    )));
                }
                Ok(Detail::new(
                    Endpoint {
                        ip: quoted(scrubber.apply(d.target.ip)),
                        port: d.target.port,
                    },
                    reason,
                    scrubber.apply(d.message),
                ))
            })
            .collect()
    }
}

/// At most the first 64 characters of a plugin's text that the host
/// quotes, in an error or as a target's name: an error is logged and
/// answered whole, and a name is no place for a message.
fn quoted(text: String) -> String {
    match text.char_indices().nth(64) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

/// What an element of a list takes besides its own bytes, as the
/// canonical ABI lays it out (a string's pointer and length): a list of
/// empty strings is not free, to the plugin or to the host that lifts it.
const ELEMENT: usize = 8;

fn normalized_size(
    public: &str,
    search_terms: &[String],
    target_ips: impl Iterator<Item = usize>,
    secret: usize,
) -> usize {
    public.len()
        + search_terms
            .iter()
            .map(|t| t.len() + ELEMENT)
            .sum::<usize>()
        + target_ips.map(|n| n + ELEMENT + 4).sum::<usize>()
        + secret
}

fn reason_0_1(r: wit1::Reason) -> Reason {
    match r {
        wit1::Reason::Ok => Reason::Ok,
        wit1::Reason::AuthFailed => Reason::AuthFailed,
        wit1::Reason::Refused => Reason::Refused,
        wit1::Reason::Unreachable => Reason::Unreachable,
        wit1::Reason::Timeout => Reason::Timeout,
        wit1::Reason::HostKeyMismatch => Reason::HostKeyMismatch,
        wit1::Reason::ProtocolError => Reason::ProtocolError,
        wit1::Reason::NotGranted => Reason::NotGranted,
        wit1::Reason::Other => Reason::Other,
    }
}

/// A typed contract's reason in the host's terms.
macro_rules! typed_reason {
    ($name:ident, $wit:ident) => {
        fn $name(r: $wit::Reason) -> Reason {
            match r {
                $wit::Reason::Ok => Reason::Ok,
                $wit::Reason::AuthFailed => Reason::AuthFailed,
                $wit::Reason::Refused => Reason::Refused,
                $wit::Reason::Unreachable => Reason::Unreachable,
                $wit::Reason::Timeout => Reason::Timeout,
                $wit::Reason::HostKeyMismatch => Reason::HostKeyMismatch,
                $wit::Reason::ProtocolError => Reason::ProtocolError,
                $wit::Reason::NotGranted => Reason::NotGranted,
                $wit::Reason::Other => Reason::Other,
            }
        }
    };
}

typed_reason!(reason_0_2, wit2);
typed_reason!(reason_0_3, wit3);
