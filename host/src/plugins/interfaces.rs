//! The interfaces plugins export, in each contract version, as sets of
//! [`Export`]s found and checked once at load. `X::find` at load, then per
//! call `X::instantiate`, whose answer's methods mirror the generated
//! bindings' (`call_normalize`, …) so callers read the same.

use wasmtime::Result;
use wasmtime::component::{Instance, InstancePre};

use super::bindings::{v0_1, v0_2, v0_3};
use super::export::{Export, Signature};
use super::state::CallState;

type Store<'s> = &'s mut wasmtime::Store<CallState>;

/// Declares a signature: a name, its parameters with the lifetime `'a`,
/// and its one result.
macro_rules! signature {
    ($name:ident, <$a:lifetime> ($($param:ty),*) -> $result:ty) => {
        pub(in crate::plugins) enum $name {}
        impl Signature for $name {
            type Params<$a> = ($($param,)*);
            type Results = ($result,);
        }
    };
}

/// One interface: the component's `InstancePre` with the exports found in
/// it at load, and the per-instance view with one method per export.
macro_rules! interface {
    (
        $(#[$doc:meta])* $set:ident, $view:ident, $name:literal,
        { $($field:ident: $sig:ident = $export:literal,
            fn $method:ident(<$a:lifetime> $($arg:ident: $ty:ty),*) -> $result:ty;)* }
    ) => {
        $(#[$doc])*
        pub(in crate::plugins) struct $set {
            pre: InstancePre<CallState>,
            $($field: Export<$sig>,)*
        }

        impl $set {
            pub(in crate::plugins) fn find(pre: InstancePre<CallState>) -> Result<Self> {
                Ok(Self {
                    $($field: Export::find(&pre, Some($name), $export)?,)*
                    pre,
                })
            }

            /// A fresh instance in `store`, to call the exports of.
            pub(in crate::plugins) async fn instantiate(&self, store: Store<'_>) -> Result<$view<'_>> {
                let instance = self.pre.instantiate_async(store).await?;
                Ok($view { set: self, instance })
            }
        }

        pub(in crate::plugins) struct $view<'e> {
            set: &'e $set,
            instance: Instance,
        }

        impl $view<'_> {
            $(
                // `describe` takes nothing, so it names a lifetime it does not use.
                #[allow(clippy::extra_unused_lifetimes)]
                pub(in crate::plugins) async fn $method<$a>(&self, store: Store<'_>, $($arg: $ty),*) -> Result<$result> {
                    let (result,) = self.set.$field.call(store, &self.instance, ($($arg,)*)).await?;
                    Ok(result)
                }
            )*
        }
    };
}

mod verification_0_1 {
    use super::*;
    use v0_1::verifier::credhost::plugin::types::Refusal;
    use v0_1::verifier::exports::credhost::plugin::verification::{
        Descriptor, Detail, Normalized, Purpose,
    };

    signature!(Describe, <'a> () -> Descriptor);
    signature!(Normalize, <'a> (&'a str, Purpose) -> std::result::Result<Normalized, Refusal>);
    signature!(Verify, <'a> (&'a str, &'a [u8]) -> Vec<Detail>);

    interface!(
        /// `credhost:plugin/verification@0.1.0`.
        Verification, Calls, "credhost:plugin/verification@0.1.0", {
            describe: Describe = "describe",
                fn call_describe(<'a>) -> Descriptor;
            normalize: Normalize = "normalize",
                fn call_normalize(<'a> property: &'a str, purpose: Purpose)
                    -> std::result::Result<Normalized, Refusal>;
            verify: Verify = "verify",
                fn call_verify(<'a> public: &'a str, secret: &'a [u8]) -> Vec<Detail>;
        }
    );
}

mod verification_0_2 {
    use super::*;
    use v0_2::verifier::credhost::plugin::types::{Refusal, Target};
    use v0_2::verifier::exports::credhost::plugin::verification::{
        Descriptor, Normalized, Purpose, Verdict,
    };

    signature!(Describe, <'a> () -> Descriptor);
    signature!(
        Normalize,
        <'a> (&'a str, Purpose, Option<&'a str>) -> std::result::Result<Normalized, Refusal>
    );
    signature!(VerifyTarget, <'a> (&'a str, &'a [u8], &'a Target) -> Verdict);

    interface!(
        /// `credhost:plugin/verification@0.2.0`.
        Verification, Calls, "credhost:plugin/verification@0.2.0", {
            describe: Describe = "describe",
                fn call_describe(<'a>) -> Descriptor;
            normalize: Normalize = "normalize",
                fn call_normalize(<'a> property: &'a str, purpose: Purpose, stored: Option<&'a str>)
                    -> std::result::Result<Normalized, Refusal>;
            verify_target: VerifyTarget = "verify-target",
                fn call_verify_target(<'a> public: &'a str, secret: &'a [u8], target: &'a Target)
                    -> Verdict;
        }
    );
}

mod verification_0_3 {
    use super::*;
    use v0_3::verifier::credhost::plugin::types::Target;
    use v0_3::verifier::exports::credhost::plugin::verification::{
        Answer, Descriptor, NormalizeStep, Purpose, VerifyStep,
    };

    signature!(Describe, <'a> () -> Descriptor);
    signature!(
        Normalize,
        <'a> (&'a str, Purpose, Option<&'a str>, Option<&'a [Answer]>) -> NormalizeStep
    );
    signature!(
        VerifyTarget,
        <'a> (&'a str, &'a [u8], &'a Target, Option<&'a [Answer]>) -> VerifyStep
    );

    interface!(
        /// `credhost:plugin/verification@0.3.0`.
        Verification, Calls, "credhost:plugin/verification@0.3.0", {
            describe: Describe = "describe",
                fn call_describe(<'a>) -> Descriptor;
            normalize: Normalize = "normalize",
                fn call_normalize(<'a> property: &'a str, purpose: Purpose, stored: Option<&'a str>,
                    answers: Option<&'a [Answer]>) -> NormalizeStep;
            verify_target: VerifyTarget = "verify-target",
                fn call_verify_target(<'a> public: &'a str, secret: &'a [u8], target: &'a Target,
                    answers: Option<&'a [Answer]>) -> VerifyStep;
        }
    );
}

/// `sealing` is the same interface in every version, in its own package.
macro_rules! sealing {
    ($module:ident, $bindings:ident, $name:literal) => {
        mod $module {
            use super::*;
            use $bindings::policy::exports::credhost::plugin::sealing::Descriptor;

            signature!(Describe, <'a> () -> Descriptor);
            signature!(
                Seal,
                <'a> (&'a [u8], &'a [u8], &'a [u8]) -> std::result::Result<Vec<u8>, String>
            );

            interface!(
                #[doc = concat!("`", $name, "`.")]
                Sealing, Calls, $name, {
                    describe: Describe = "describe",
                        fn call_describe(<'a>) -> Descriptor;
                    seal: Seal = "seal",
                        fn call_seal(<'a> key: &'a [u8], plaintext: &'a [u8], aad: &'a [u8])
                            -> std::result::Result<Vec<u8>, String>;
                    open: Seal = "open",
                        fn call_open(<'a> key: &'a [u8], ciphertext: &'a [u8], aad: &'a [u8])
                            -> std::result::Result<Vec<u8>, String>;
                }
            );
        }
    };
}

sealing!(sealing_0_1, v0_1, "credhost:plugin/sealing@0.1.0");
sealing!(sealing_0_2, v0_2, "credhost:plugin/sealing@0.2.0");
sealing!(sealing_0_3, v0_3, "credhost:plugin/sealing@0.3.0");

/// A component's nullary top-level export `run`: the benchmarks' floor.
mod empty {
    use super::*;

    pub(in crate::plugins) enum Run {}
    impl Signature for Run {
        type Params<'a> = ();
        type Results = ();
    }

    pub(in crate::plugins) struct Empty {
        run: Export<Run>,
    }

    impl Empty {
        pub(in crate::plugins) fn find(pre: &InstancePre<CallState>) -> Result<Self> {
            Ok(Self {
                run: Export::find(pre, None, "run")?,
            })
        }

        pub(in crate::plugins) async fn call_run(
            &self,
            store: Store<'_>,
            instance: &Instance,
        ) -> Result<()> {
            self.run.call(store, instance, ()).await
        }
    }
}

pub(super) use empty::Empty;
pub(super) use sealing_0_1::Sealing as Sealing0_1;
pub(super) use sealing_0_2::Sealing as Sealing0_2;
pub(super) use sealing_0_3::Sealing as Sealing0_3;
pub(super) use verification_0_1::{Calls as Calls0_1, Verification as Verification0_1};
pub(super) use verification_0_2::{Calls as Calls0_2, Verification as Verification0_2};
pub(super) use verification_0_3::{Calls as Calls0_3, Verification as Verification0_3};
