//! A loaded encryption policy. It gets no network; it sees a key only for the
//! duration of one call.

use std::sync::Arc;

use hkdf::Hkdf;
use sha2::Sha256;
use wasmtime::component::Component;

use super::contract::Version;
use super::error::PluginError;
use super::interfaces::{Sealing0_1, Sealing0_2, Sealing0_3};
use super::limits::Limits;
use super::runtime::{CallLabel, Runtime, Work};
use super::types::{PluginMeta, PolicyInfo, Scrubber};
use crate::budget::Client;
use crate::secret::Secret;

/// Why `seal` or `open` did not produce bytes.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The policy refused: wrong key, wrong associated data, altered ciphertext.
    #[error("{0}")]
    Refused(String),
}

const POLICY_EXPORTS: [&str; 3] = ["describe", "seal", "open"];

enum Pre {
    V0_1(Sealing0_1),
    V0_2(Sealing0_2),
    V0_3(Sealing0_3),
}

pub struct PolicyPlugin {
    pub meta: PluginMeta,
    pub info: PolicyInfo,
    label: CallLabel,
    pre: Pre,
    runtime: Arc<Runtime>,
}

/// One call of the `sealing` export, whichever the version: the versions
/// have the same interface in their own packages, so the same body serves
/// each.
macro_rules! sealing_call {
    ($plugin:expr, $client:expr, $export:literal, $mask:expr, |$guest:ident, $store:ident| $body:expr, $size:expr) => {
        sealing_call!(@each $plugin, $client, $export, $mask, |$guest, $store| $body, $size, [V0_1, V0_2, V0_3])
    };
    (@each $plugin:expr, $client:expr, $export:literal, $mask:expr, |$guest:ident, $store:ident| $body:expr, $size:expr, [$($version:ident),*]) => {{
        let plugin = $plugin;
        match &plugin.pre {
            $(Pre::$version(set) => {
                plugin
                    .runtime
                    .call(
                        &plugin.label,
                        $export,
                        &plugin.meta.limits,
                        Work::Quick($client.clone()),
                        $mask,
                        async |$store| {
                            let $guest = set.instantiate(&mut *$store).await?;
                            $body
                        },
                        $size,
                    )
                    .await
            })*
        }
    }};
}

impl PolicyPlugin {
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
                .policy_v0_1
                .instantiate_pre(component)
                .and_then(Sealing0_1::find)
                .map(Pre::V0_1),
            Version::V0_2 => runtime
                .linkers
                .policy_v0_2
                .instantiate_pre(component)
                .and_then(Sealing0_2::find)
                .map(Pre::V0_2),
            Version::V0_3 => runtime
                .linkers
                .policy_v0_3
                .instantiate_pre(component)
                .and_then(Sealing0_3::find)
                .map(Pre::V0_3),
        }
        .map_err(|e| load_error(format!("{e:#}")))?;
        meta.wit = version.package();
        let mut plugin = Self {
            label: CallLabel::new(&meta.name, &POLICY_EXPORTS),
            meta: meta.clone(),
            info: PolicyInfo {
                name: String::new(),
                algorithm: String::new(),
                key_length: 0,
            },
            pre,
            runtime,
        };
        let (name, version, algorithm, key_length) = plugin.describe().await?;
        if name.is_empty() || key_length == 0 || key_length > 1024 {
            return Err(load_error(
                "describe() gave no name or an unusable key length".into(),
            ));
        }
        meta.name = name.clone();
        meta.version = version;
        plugin.label = CallLabel::new(&meta.name, &POLICY_EXPORTS);
        plugin.meta = meta;
        plugin.info = PolicyInfo {
            name,
            algorithm,
            key_length,
        };
        Ok(plugin)
    }

    async fn describe(&self) -> Result<(String, String, String, u32), PluginError> {
        sealing_call!(
            self,
            Client::server(),
            "describe",
            &Scrubber::for_nothing,
            |guest, store| {
                let d = guest.call_describe(store).await?;
                Ok((d.name, d.version, d.algorithm, d.key_length))
            },
            |(name, version, algorithm, _): &(String, String, String, u32)| name.len()
                + version.len()
                + algorithm.len()
        )
    }

    /// The key this policy is handed for a keyring key: the key itself when
    /// the lengths agree (every key is 32 bytes, as obshell's), otherwise
    /// HKDF-SHA256 of it, to exactly the length the policy asked for.
    fn key_for(&self, key: &Secret) -> Secret {
        let wanted = self.info.key_length as usize;
        if key.len() == wanted {
            return key.clone();
        }
        let mut derived = vec![0u8; wanted];
        Hkdf::<Sha256>::new(None, key.expose())
            .expand(
                format!("credhost policy key: {}", self.info.name).as_bytes(),
                &mut derived,
            )
            .expect("key lengths up to 1024 bytes fit HKDF-SHA256");
        Secret::new(derived)
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.meta.limits = limits;
        self
    }

    /// Seals many secrets under one key, as many per instance as the
    /// output cap allows: a rewrap batch pays for instantiation once per
    /// run, not per row, and never asks for more than a call may return.
    /// The calls count against `client`'s share of the instances.
    ///
    /// What is stored is often the only copy of a secret, so each
    /// ciphertext is held to the contract before it is: opened in fresh
    /// instances, as it will be when read, it gives back exactly its
    /// plaintext, and nothing under other associated data; and it does
    /// not hold the plaintext. An item that fails is refused, so a policy
    /// that forgets, keeps state across calls, ignores the associated data
    /// or passes its input through cannot make the server keep what does
    /// not open, or keep a secret in clear.
    pub async fn seal_many(
        &self,
        client: &Client,
        key: &Secret,
        items: &[(Secret, Vec<u8>)],
    ) -> Result<Vec<Result<Vec<u8>, String>>, PluginError> {
        let mut sealed = Vec::with_capacity(items.len());
        for run in runs(items, self.meta.limits.output_bytes, |(p, _)| {
            p.expose().len()
        }) {
            sealed.extend(self.seal_run(client, key, run).await?);
        }
        // Each ciphertext under its own associated data, then under
        // another's.
        let trials: Vec<(Vec<u8>, Vec<u8>)> = items
            .iter()
            .zip(&sealed)
            .filter_map(|((_, aad), sealed)| Some((sealed.as_ref().ok()?, aad)))
            .flat_map(|(ciphertext, aad)| {
                let mut other = aad.clone();
                other.extend_from_slice(b"/another");
                [
                    (ciphertext.clone(), aad.clone()),
                    (ciphertext.clone(), other),
                ]
            })
            .collect();
        let mut opened = self.open_many(client, key, &trials).await?.into_iter();
        Ok(items
            .iter()
            .zip(sealed)
            .map(|((plaintext, _), sealed)| {
                let ciphertext = sealed?;
                let (own, other) = (opened.next(), opened.next());
                kept_to_contract(plaintext, &ciphertext, own, other)?;
                Ok(ciphertext)
            })
            .collect())
    }

    async fn seal_run(
        &self,
        client: &Client,
        key: &Secret,
        items: &[(Secret, Vec<u8>)],
    ) -> Result<Vec<Result<Vec<u8>, String>>, PluginError> {
        let key = self.key_for(key);
        let mask = || Scrubber::of_sealing(key.expose(), items.iter().map(|(p, _)| p.expose()));
        let sealed = sealing_call!(
            self,
            client,
            "seal",
            &|_| mask(),
            |guest, store| {
                let mut out = Vec::with_capacity(items.len());
                for (plaintext, aad) in items {
                    out.push(
                        guest
                            .call_seal(&mut *store, key.expose(), plaintext.expose(), aad)
                            .await?,
                    );
                }
                Ok(out)
            },
            |sealed: &Vec<Result<Vec<u8>, String>>| result_bytes(sealed)
        )?;
        Ok(masked_refusals(sealed, mask))
    }

    /// Opens many ciphertexts under one key, in runs as `seal_many` does.
    pub async fn open_many(
        &self,
        client: &Client,
        key: &Secret,
        items: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Vec<Result<Secret, String>>, PluginError> {
        let mut out = Vec::with_capacity(items.len());
        for run in runs(items, self.meta.limits.output_bytes, |(c, _)| c.len()) {
            out.extend(self.open_run(client, key, run).await?);
        }
        Ok(out)
    }

    async fn open_run(
        &self,
        client: &Client,
        key: &Secret,
        items: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Vec<Result<Secret, String>>, PluginError> {
        let key = self.key_for(key);
        // What a policy opened is masked in its lines; what it refused to
        // open is not known: only the key is masked in its refusals.
        let mask = || Scrubber::of_sealing(key.expose(), []);
        let opened = sealing_call!(
            self,
            client,
            "open",
            &|opened: Option<&Vec<Result<Vec<u8>, String>>>| match opened {
                // Everything opened came back: it is what to mask.
                Some(opened) if opened.iter().all(Result::is_ok) => {
                    let plaintexts = opened.iter().filter_map(|r| r.as_deref().ok());
                    Scrubber::of_sealing(key.expose(), plaintexts)
                }
                // What the call opened before it failed, or opened and
                // then refused, is not known: its lines go whole.
                _ => Scrubber::everything(),
            },
            |guest, store| {
                let mut out = Vec::with_capacity(items.len());
                for (ciphertext, aad) in items {
                    out.push(
                        guest
                            .call_open(&mut *store, key.expose(), ciphertext, aad)
                            .await?,
                    );
                }
                Ok(out)
            },
            |opened: &Vec<Result<Vec<u8>, String>>| result_bytes(opened)
        )?;
        Ok(masked_refusals(opened, mask)
            .into_iter()
            .map(|r| r.map(Secret::new))
            .collect())
    }

    /// One secret sealed for `client`.
    pub async fn seal(
        &self,
        client: &Client,
        key: &Secret,
        plaintext: &Secret,
        aad: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let item = [(plaintext.clone(), aad.to_vec())];
        let mut sealed = self.seal_many(client, key, &item).await?;
        sealed
            .pop()
            .expect("one result per item")
            .map_err(SealError::Refused)
    }

    /// One secret opened for `client`.
    pub async fn open(
        &self,
        client: &Client,
        key: &Secret,
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<Secret, SealError> {
        let item = [(ciphertext.to_vec(), aad.to_vec())];
        let mut opened = self.open_many(client, key, &item).await?;
        opened
            .pop()
            .expect("one result per item")
            .map_err(SealError::Refused)
    }
}

/// Why `ciphertext`, sealed from `plaintext` and then opened under its own
/// associated data (`own`) and another's (`other`), may not be stored, if
/// it may not.
fn kept_to_contract(
    plaintext: &Secret,
    ciphertext: &[u8],
    own: Option<Result<Secret, String>>,
    other: Option<Result<Secret, String>>,
) -> Result<(), String> {
    let plaintext = plaintext.expose();
    // Four bytes or more: a shorter plaintext turns up in random bytes too
    // often (four, about once in 2^32 / the ciphertext's length).
    if plaintext.len() >= 4 && memchr::memmem::find(ciphertext, plaintext).is_some() {
        return Err("the policy's ciphertext holds the plaintext".into());
    }
    if !matches!(own, Some(Ok(opened)) if opened.expose() == plaintext) {
        return Err("the policy's ciphertext does not open to what it sealed".into());
    }
    if !matches!(other, Some(Err(_))) {
        return Err(
            "the policy's ciphertext opens under another credential's associated data".into(),
        );
    }
    Ok(())
}

/// `results` with the refusals' text masked (they are answered and
/// logged): a policy that quotes what it was handed leaks it nowhere.
fn masked_refusals(
    results: Vec<Result<Vec<u8>, String>>,
    mask: impl FnOnce() -> Scrubber,
) -> Vec<Result<Vec<u8>, String>> {
    if results.iter().all(Result::is_ok) {
        return results;
    }
    let scrubber = mask();
    results
        .into_iter()
        .map(|r| r.map_err(|message| scrubber.apply(message)))
        .collect()
}

fn result_bytes(results: &[Result<Vec<u8>, String>]) -> usize {
    results
        .iter()
        .map(|r| r.as_ref().map_or_else(String::len, Vec::len))
        .sum()
}

/// Items per call at most: a call must finish well within its deadline
/// even when the rewrap, at a low priority, gets little CPU.
const MAX_RUN: usize = 128;

/// Cuts `items` into runs whose answers fit in half of `output_cap`: an
/// answer is about as long as its input (an AEAD adds a nonce and a tag, an
/// error message a little more), and the other half is the margin. A single
/// item larger than that still gets a run of its own.
fn runs<T>(items: &[T], output_cap: u64, size: impl Fn(&T) -> usize) -> Vec<&[T]> {
    const PER_ITEM_OVERHEAD: u64 = 128;
    let budget = (output_cap / 2).max(1);
    let mut runs = Vec::new();
    let (mut start, mut used) = (0, 0u64);
    for (i, item) in items.iter().enumerate() {
        let cost = size(item) as u64 + PER_ITEM_OVERHEAD;
        if i > start && (used + cost > budget || i - start == MAX_RUN) {
            runs.push(&items[start..i]);
            (start, used) = (i, 0);
        }
        used += cost;
    }
    if start < items.len() {
        runs.push(&items[start..]);
    }
    runs
}

#[cfg(test)]
mod run_tests {
    use super::runs;

    #[test]
    fn runs_stay_within_half_the_cap() {
        let items = vec![4096usize; 300];
        let cut = runs(&items, 1 << 20, |n| *n);
        assert_eq!(cut.iter().map(|r| r.len()).sum::<usize>(), 300);
        assert!(cut.len() >= 3, "{}", cut.len());
        for run in &cut {
            assert!(run.len() as u64 * (4096 + 128) <= 1 << 19);
        }
        assert_eq!(runs(&[10usize; 3], 1 << 20, |n| *n).len(), 1);
        assert_eq!(runs(&[10usize; 300], 1 << 20, |n| *n).len(), 3, "by count");
        assert_eq!(runs(&[1usize << 20], 1 << 20, |n| *n).len(), 1);
        assert!(runs(&Vec::<usize>::new(), 1 << 20, |n| *n).is_empty());
    }
}

#[cfg(test)]
mod contract_tests {
    use super::kept_to_contract;
    use crate::secret::Secret;

    #[test]
    fn a_ciphertext_is_kept_only_if_it_opens_to_its_plaintext_and_only_under_its_own_data() {
        let plaintext = Secret::new(b"Passphrase-4471".to_vec());
        let opens = |bytes: &[u8]| Some(Ok(Secret::new(bytes.to_vec())));
        let refused = || Some(Err("wrong associated data".to_string()));
        let sealed = b"nonce+ciphertext+tag";
        assert_eq!(
            kept_to_contract(&plaintext, sealed, opens(b"Passphrase-4471"), refused()),
            Ok(())
        );
        for (ciphertext, own, other, why) in [
            (
                &b"xxPassphrase-4471yy"[..],
                opens(b"Passphrase-4471"),
                refused(),
                "holds the plaintext",
            ),
            (
                sealed,
                opens(b"Passphrase-4472"),
                refused(),
                "does not open",
            ),
            (sealed, refused(), refused(), "does not open"),
            (sealed, None, None, "does not open"),
            (
                sealed,
                opens(b"Passphrase-4471"),
                opens(b"Passphrase-4471"),
                "another credential's",
            ),
        ] {
            let said = kept_to_contract(&plaintext, ciphertext, own, other).unwrap_err();
            assert!(said.contains(why), "{said}");
        }
        // A plaintext of three bytes or fewer may turn up in random bytes:
        // not held against it. Four are.
        let short = Secret::new(b"pw1".to_vec());
        assert_eq!(
            kept_to_contract(&short, b"..pw1..", opens(b"pw1"), refused()),
            Ok(())
        );
        let four = Secret::new(b"pw12".to_vec());
        assert!(kept_to_contract(&four, b"..pw12..", opens(b"pw12"), refused()).is_err());
    }
}
