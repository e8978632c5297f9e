//! A plugin's export, found and type-checked once when the plugin is
//! loaded, then called in each fresh instance by index. The bindings
//! wasmtime generates check the type of every export of an interface on
//! every instantiation (for a verifier, four signatures of records, enums
//! and lists, walked field by field); a component's types cannot change
//! after it is loaded, so checking them once is enough.

use std::marker::PhantomData;

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{
    ComponentExportIndex, ComponentNamedList, Instance, InstancePre, Lift, Lower, TypedFunc,
};
use wasmtime::{AsContextMut, Result};

/// The Rust types of one export's parameters and results, as the
/// generated bindings name them.
pub(super) trait Signature {
    type Params<'a>: ComponentNamedList + Lower + Send + Sync;
    type Results: ComponentNamedList + Lift + Send + Sync + 'static;
}

pub(super) struct Export<S> {
    index: ComponentExportIndex,
    signature: PhantomData<fn() -> S>,
}

impl<S: Signature> Export<S> {
    /// Finds `name` in the exported `interface` (`None`: the component's
    /// own top level) of `pre`'s component, and checks that its type is
    /// `S`'s.
    pub(super) fn find<T>(
        pre: &InstancePre<T>,
        interface: Option<&str>,
        name: &str,
    ) -> Result<Self> {
        let component = pre.component();
        let scope = match interface {
            Some(interface) => Some(
                component
                    .get_export_index(None, interface)
                    .ok_or_else(|| wasmtime::format_err!("no export `{interface}`"))?,
            ),
            None => None,
        };
        let (item, index) = component
            .get_export(scope.as_ref(), name)
            .ok_or_else(|| wasmtime::format_err!("no export `{name}`"))?;
        let ComponentItem::ComponentFunc(func) = item else {
            wasmtime::bail!("export `{name}` is not a function");
        };
        func.typecheck::<S::Params<'_>, S::Results>(&pre.instance_type())
            .map_err(|e| e.context(format!("type-checking export `{name}`")))?;
        Ok(Self {
            index,
            signature: PhantomData,
        })
    }

    /// Calls the export in `instance`, an instance of the component it was
    /// found in.
    pub(super) async fn call<T: Send>(
        &self,
        mut store: impl AsContextMut<Data = T>,
        instance: &Instance,
        params: S::Params<'_>,
    ) -> Result<S::Results> {
        let func = instance
            .get_func(&mut store, self.index)
            .ok_or_else(|| wasmtime::format_err!("export missing from its own component"))?;
        // SAFETY: `find` checked this export's type against `S` in the
        // component `instance` was made from; a component's types are fixed.
        let typed = unsafe { TypedFunc::<S::Params<'_>, S::Results>::new_unchecked(func) };
        typed.call_async(&mut store, params).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::state::CallState;
    use wasmtime::component::{Component, Linker};
    use wasmtime::{Config, Engine};

    /// `run: func()`, as the benchmarks' empty component exports it.
    enum Run {}
    impl Signature for Run {
        type Params<'a> = ();
        type Results = ();
    }

    /// What a plugin claiming `run` would be called with if its type were
    /// not checked.
    enum Mistyped {}
    impl Signature for Mistyped {
        type Params<'a> = (&'a str,);
        type Results = (u32,);
    }

    fn empty_component() -> InstancePre<CallState> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        let engine = Engine::new(&config).unwrap();
        let bytes =
            std::fs::read(crate::plugins::embedded::build_dir().join("empty_component.wasm"))
                .unwrap();
        let component = Component::new(&engine, bytes).unwrap();
        Linker::<CallState>::new(&engine)
            .instantiate_pre(&component)
            .unwrap()
    }

    #[test]
    fn an_export_is_found_only_with_its_own_type() {
        let pre = empty_component();
        assert!(Export::<Run>::find(&pre, None, "run").is_ok());
        let mistyped = Export::<Mistyped>::find(&pre, None, "run").err().unwrap();
        assert!(
            format!("{mistyped:#}").contains("type-checking export `run`"),
            "{mistyped:#}"
        );
        let missing = Export::<Run>::find(&pre, None, "walk").err().unwrap();
        assert_eq!(missing.to_string(), "no export `walk`");
        let no_interface =
            Export::<Run>::find(&pre, Some("credhost:plugin/verification@0.2.0"), "run")
                .err()
                .unwrap();
        assert!(
            no_interface
                .to_string()
                .starts_with("no export `credhost:plugin/verification")
        );
    }
}
