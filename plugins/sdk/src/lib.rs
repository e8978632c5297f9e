//! Writing a credhost verifier: implement [`Verifier`] and call
//! [`export_verifier!`]. The crate brings the bindings of the current
//! contract (`credhost:plugin@0.3.0`), obshell's way of reading a property
//! ([`Property`]), canonical endpoints ([`endpoints`]), refusals and verdicts,
//! and the host's SSH ([`ssh`]): logins and key fingerprints, which the
//! plugin asks the host for instead of importing them.
//!
//! ```ignore
//! use credhost_plugin_sdk::*;
//!
//! struct Echo;
//!
//! impl Verifier for Echo {
//!     fn describe() -> Descriptor { … }
//!     fn normalize(property: &str, purpose: Purpose, stored: Option<&str>) -> Result<Normalized, Refusal> { … }
//!     fn verify_target(public: &str, secret: &[u8], target: &Target) -> Verdict { … }
//! }
//!
//! export_verifier!(Echo);
//! ```
//!
//! The crate has no need of `std`, and neither has a verifier that opens no
//! sockets: such a plugin imports only the capabilities it calls, which
//! makes every call cheaper (see [`no_std_runtime!`]).

#![no_std]

extern crate alloc;
extern crate self as credhost_plugin_sdk;

mod asks;
mod bump;
mod endpoint;
mod json;
mod property;
mod runtime;
mod verdict;

use alloc::format;
use alloc::string::String;

/// The generated bindings of `wit/0.3.0`, for what the helpers do not cover.
/// Export with [`export_verifier!`]: the `export_guest!` generated here
/// exports under a prefix no component looks for.
pub mod bindings {
    wit_bindgen::generate!({
        world: "verifier",
        path: "../../wit/0.3.0",
        pub_export_macro: true,
        export_macro_name: "export_guest",
        default_bindings_module: "::credhost_plugin_sdk::bindings",
        runtime_path: "::credhost_plugin_sdk::__wit_bindgen::rt",
        // The exports `export_guest!` writes are renamed out of the
        // contract's way (a component leaves core exports it does not know
        // unexported); `export_verifier!` writes the contract's own.
        export_prefix: "credhost-sdk-unused-",
    });
}

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

// `core` leaves `memcmp` and friends to the C library; `std` links
// wasi-libc for them, and a `no_std` plugin takes just those functions from
// it (they import nothing from the host).
#[cfg(target_arch = "wasm32")]
#[link(name = "c")]
unsafe extern "C" {}

/// What the exported macros name, so they work in `no_std` crates too.
#[doc(hidden)]
pub mod __private {
    pub use alloc::string::String;
    pub use alloc::vec::Vec;

    pub use crate::asks::{begin, end};
    pub use crate::bump::Bump;
    pub use crate::runtime::cabi_realloc;
}

/// SSH as the host does it for a verifier: call these as plain functions.
/// Each is an ask (see the contract): the first one that `verify_target` or
/// `normalize` reaches unanswered returns a stand-in, the export returns
/// the ask instead of the verifier's result, and the host does the work,
/// then calls the export again with the answer, which the same function
/// returns this time. Only `verify_target` may log in, and only to its own
/// target.
pub mod ssh {
    pub use crate::asks::{key_fingerprint, key_login, password_login};
    pub use crate::bindings::credhost::plugin::ssh::{
        KeyFacts, Login, LoginResult, Outcome, PrivateKey, Proof,
    };
}

pub use bindings::credhost::plugin::host_keys;
pub use bindings::credhost::plugin::log;
pub use bindings::credhost::plugin::types::{HostKey, Refusal, RefusalCode, Target};
pub use bindings::exports::credhost::plugin::verification::{
    Answer, Ask, Descriptor, NormalizeStep, Normalized, Purpose, Reason, Secret, Verdict,
    VerifyStep,
};
pub use endpoint::{endpoint, endpoints, show};
pub use json::{Json, Number, push_endpoints, push_string};
pub use property::{Names, Property, RawTarget, max_bytes, max_chars, secret};
pub use verdict::{failed, ok};

/// What a verifier implements. The host calls `verify_target` once per
/// target of a credential, all of them at once, each in a fresh instance
/// that may reach only that target: write it for one target.
pub trait Verifier {
    fn describe() -> Descriptor;
    /// `stored`: on update, the public part stored now.
    fn normalize(
        property: &str,
        purpose: Purpose,
        stored: Option<&str>,
    ) -> Result<Normalized, Refusal>;
    fn verify_target(public: &str, secret: &[u8], target: &Target) -> Verdict;
}

/// Exports a [`Verifier`] as the plugin's `verification` interface.
#[macro_export]
macro_rules! export_verifier {
    ($verifier:ty) => {
        #[doc(hidden)]
        pub struct __CredhostGuest;

        impl $crate::bindings::exports::credhost::plugin::verification::Guest for __CredhostGuest {
            fn describe() -> $crate::Descriptor {
                <$verifier as $crate::Verifier>::describe()
            }

            fn normalize(
                property: $crate::__private::String,
                purpose: $crate::Purpose,
                stored: ::core::option::Option<$crate::__private::String>,
                answers: ::core::option::Option<$crate::__private::Vec<$crate::Answer>>,
            ) -> $crate::NormalizeStep {
                $crate::__private::begin(answers.unwrap_or_default());
                let result = <$verifier as $crate::Verifier>::normalize(
                    &property,
                    purpose,
                    stored.as_deref(),
                );
                match $crate::__private::end() {
                    ::core::option::Option::Some(ask) => $crate::NormalizeStep::Ask(ask),
                    ::core::option::Option::None => $crate::NormalizeStep::Done(result),
                }
            }

            fn verify_target(
                public: $crate::__private::String,
                secret: $crate::__private::Vec<u8>,
                target: $crate::Target,
                answers: ::core::option::Option<$crate::__private::Vec<$crate::Answer>>,
            ) -> $crate::VerifyStep {
                $crate::__private::begin(answers.unwrap_or_default());
                let verdict =
                    <$verifier as $crate::Verifier>::verify_target(&public, &secret, &target);
                match $crate::__private::end() {
                    ::core::option::Option::Some(ask) => $crate::VerifyStep::Ask(ask),
                    ::core::option::Option::None => $crate::VerifyStep::Done(verdict),
                }
            }
        }

        // wit-bindgen's exports, for the custom section that tells the
        // component's type; their functions go out under another name.
        $crate::bindings::export_guest!(__CredhostGuest);

        // The contract's exports, without the post-return functions
        // wit-bindgen pairs with every export returning a string or a list.
        // Those give the answer's blocks back to the allocator once the
        // host has read them, and the host calls one into the instance
        // after each call. Every call is a fresh instance, dropped with
        // its memory right after: the call would only cost time.
        // The names are the contract's, `wit/0.3.0`: a name or a signature
        // that drifts from it fails the component's build, never a call.
        const _: () = {
            use $crate::bindings::exports::credhost::plugin::verification as glue;

            #[unsafe(export_name = "credhost:plugin/verification@0.3.0#describe")]
            unsafe extern "C" fn describe() -> *mut u8 {
                // SAFETY: the host calls it as the canonical ABI says.
                unsafe { glue::_export_describe_cabi::<__CredhostGuest>() }
            }

            #[unsafe(export_name = "credhost:plugin/verification@0.3.0#normalize")]
            #[allow(clippy::too_many_arguments)]
            unsafe extern "C" fn normalize(
                a0: *mut u8,
                a1: usize,
                a2: i32,
                a3: i32,
                a4: *mut u8,
                a5: usize,
                a6: i32,
                a7: *mut u8,
                a8: usize,
            ) -> *mut u8 {
                // SAFETY: as above.
                unsafe {
                    glue::_export_normalize_cabi::<__CredhostGuest>(
                        a0, a1, a2, a3, a4, a5, a6, a7, a8,
                    )
                }
            }

            #[unsafe(export_name = "credhost:plugin/verification@0.3.0#verify-target")]
            #[allow(clippy::too_many_arguments)]
            unsafe extern "C" fn verify_target(
                a0: *mut u8,
                a1: usize,
                a2: *mut u8,
                a3: usize,
                a4: *mut u8,
                a5: usize,
                a6: i32,
                a7: i32,
                a8: *mut u8,
                a9: usize,
            ) -> *mut u8 {
                // SAFETY: as above.
                unsafe {
                    glue::_export_verify_target_cabi::<__CredhostGuest>(
                        a0, a1, a2, a3, a4, a5, a6, a7, a8, a9,
                    )
                }
            }
        };
    };
}

impl Refusal {
    /// `Common.BindJsonFailed`: `Bind JSON failed: {what}`.
    pub fn bind(what: impl core::fmt::Display) -> Self {
        Self {
            code: RefusalCode::BindJsonFailed,
            message: format!("Bind JSON failed: {what}"),
        }
    }

    /// `Common.IllegalArgument`: `Illegal argument: {what}`.
    pub fn illegal(what: impl core::fmt::Display) -> Self {
        Self {
            code: RefusalCode::IllegalArgument,
            message: format!("Illegal argument: {what}"),
        }
    }

    /// `Common.InvalidIp`, as obshell words it.
    pub fn invalid_ip(ip: &str) -> Self {
        Self {
            code: RefusalCode::InvalidIp,
            message: format!("'{ip}' is not a valid IP address"),
        }
    }

    /// `Credential.SSH.InvalidPort`; `label` names the port (`SSH port`).
    pub fn invalid_port(label: &str, port: i64) -> Self {
        Self {
            code: RefusalCode::InvalidPort,
            message: format!("The {label} '{port}' is invalid, must be in [1, 65535]"),
        }
    }

    /// `Credential.AuthType.NotSupported`.
    pub fn auth_type(message: impl Into<String>) -> Self {
        Self {
            code: RefusalCode::AuthTypeNotSupported,
            message: message.into(),
        }
    }
}
