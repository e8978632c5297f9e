//! What a `#![no_std]` plugin needs from its crate: an allocator, a panic
//! handler and the canonical ABI's `cabi_realloc`.
//!
//! Why a plugin would go without `std`: `std` on `wasm32-wasip2` brings its
//! stdio, environment and exit machinery, which the component then imports
//! from the host (a dozen WASI interfaces) whether it uses them or not.
//! The host links and instantiates every one of them on every call, and a
//! call is a fresh instance: for a verifier whose work is a few
//! microseconds, that is most of its cost. Without `std`, a component
//! imports only the capabilities it calls.
//!
//! The allocator is a pointer bump (see `bump.rs`). The host's memory cap
//! still holds: growing the memory past it fails the allocation, which traps.

/// The canonical ABI's `cabi_realloc`, which `std` provides on
/// `wasm32-wasip2` and a `no_std` plugin exports through
/// [`no_std_runtime!`]: the host calls it to place arguments in the
/// plugin's memory.
///
/// # Safety
/// As `GlobalAlloc::realloc`: `old` was allocated with `old_len` and `align`.
#[doc(hidden)]
pub unsafe fn cabi_realloc(old: *mut u8, old_len: usize, align: usize, new_len: usize) -> *mut u8 {
    use alloc::alloc::{Layout, alloc, realloc};
    if new_len == 0 {
        return align as *mut u8;
    }
    // SAFETY: the canonical ABI passes a power-of-two alignment and sizes
    // that fit its 32-bit address space.
    let ptr = unsafe {
        if old_len == 0 {
            alloc(Layout::from_size_align_unchecked(new_len, align))
        } else {
            realloc(
                old,
                Layout::from_size_align_unchecked(old_len, align),
                new_len,
            )
        }
    };
    if ptr.is_null() {
        // Out of memory under the host's cap: trap, as `std` would abort.
        #[cfg(target_arch = "wasm32")]
        core::arch::wasm32::unreachable();
        #[cfg(not(target_arch = "wasm32"))]
        unreachable!("out of memory");
    }
    ptr
}

/// Installs the allocator and panic handler of a `#![no_std]` plugin:
///
/// ```ignore
/// #![cfg_attr(not(test), no_std)]
/// extern crate alloc;
/// credhost_plugin_sdk::no_std_runtime!();
/// ```
///
/// A panic traps the call; the host reports it as the plugin failing.
#[macro_export]
macro_rules! no_std_runtime {
    () => {
        #[cfg(all(target_arch = "wasm32", not(test)))]
        #[global_allocator]
        static __CREDHOST_ALLOCATOR: $crate::__private::Bump = $crate::__private::Bump::new();

        #[cfg(all(target_arch = "wasm32", not(test)))]
        #[unsafe(no_mangle)]
        unsafe extern "C" fn cabi_realloc(
            old: *mut u8,
            old_len: usize,
            align: usize,
            new_len: usize,
        ) -> *mut u8 {
            // SAFETY: the host calls it as the canonical ABI says.
            unsafe { $crate::__private::cabi_realloc(old, old_len, align, new_len) }
        }

        #[cfg(all(target_arch = "wasm32", not(test)))]
        #[panic_handler]
        fn __credhost_panic(_: &::core::panic::PanicInfo) -> ! {
            ::core::arch::wasm32::unreachable()
        }
    };
}
