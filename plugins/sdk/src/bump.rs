//! The allocator of `no_std` plugins: a pointer bump, first through a
//! zeroed arena that is part of the module's initial memory, then through
//! pages the memory grows by.
//!
//! An instance lives for one call and the host drops its whole memory
//! afterwards, so nothing needs to be given back: only the latest block is
//! reused (freed or grown in place), which is what temporary strings and
//! growing vectors ask for. The arena is why this is not one of the bump
//! allocators on crates.io: they grow the memory at the first allocation,
//! and a memory that grew is shrunk back when the host reuses its slot, two
//! `mprotect`s (and the TLB flushes they cause) on every call.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::null_mut;

/// Bytes served before the memory has to grow: in `.bss`, so they cost the
/// module nothing until touched, and the host resets only pages touched.
const ARENA: usize = 256 * 1024;
#[cfg(target_arch = "wasm32")]
const PAGE: usize = 64 * 1024;

#[repr(C, align(16))]
struct Arena(UnsafeCell<[u8; ARENA]>);

// SAFETY: a plugin instance has one thread (see `Bump`).
unsafe impl Sync for Arena {}

static ARENA_BYTES: Arena = Arena(UnsafeCell::new([0; ARENA]));

/// Where the next block goes and where the current region ends (0, 0:
/// not started).
pub struct Bump {
    next: UnsafeCell<usize>,
    end: UnsafeCell<usize>,
}

// SAFETY: the component model gives a guest one thread, and the allocator
// is only ever installed in wasm guests.
unsafe impl Sync for Bump {}

impl Bump {
    pub const fn new() -> Self {
        Self {
            next: UnsafeCell::new(0),
            end: UnsafeCell::new(0),
        }
    }

    /// A fresh region of at least `size` bytes from the memory's growth.
    #[cfg(target_arch = "wasm32")]
    fn grow(size: usize) -> Option<(usize, usize)> {
        let pages = size.div_ceil(PAGE);
        let previous = core::arch::wasm32::memory_grow(0, pages);
        if previous == usize::MAX {
            return None;
        }
        // A memory of 4 GiB ends past the last 32-bit address: no region
        // then, rather than one that wraps to 0.
        let end = previous.checked_add(pages)?.checked_mul(PAGE)?;
        Some((previous * PAGE, end))
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn grow(_: usize) -> Option<(usize, usize)> {
        None
    }
}

impl Default for Bump {
    fn default() -> Self {
        Self::new()
    }
}

unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: one thread, and no reference to the cells outlives this call.
        let (next, end) = unsafe { (&mut *self.next.get(), &mut *self.end.get()) };
        if *end == 0 {
            *next = ARENA_BYTES.0.get() as usize;
            *end = *next + ARENA;
        }
        let stop = next
            .checked_next_multiple_of(layout.align())
            .and_then(|start| Some((start, start.checked_add(layout.size())?)));
        match stop {
            Some((start, stop)) if stop <= *end => {
                *next = stop;
                start as *mut u8
            }
            _ => {
                // What is left of the region is abandoned: blocks are small
                // next to a page, so little is lost.
                let Some((from, to)) = layout
                    .size()
                    .checked_add(layout.align())
                    .and_then(Self::grow)
                else {
                    return null_mut();
                };
                let start = from.next_multiple_of(layout.align());
                *next = start + layout.size();
                *end = to;
                start as *mut u8
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as in `alloc`.
        let next = unsafe { &mut *self.next.get() };
        if ptr as usize + layout.size() == *next {
            *next = ptr as usize;
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as in `alloc`.
        let (next, end) = unsafe { (&mut *self.next.get(), &mut *self.end.get()) };
        if ptr as usize + layout.size() == *next
            && let Some(stop) = (ptr as usize).checked_add(new_size)
            && stop <= *end
        {
            *next = stop;
            return ptr;
        }
        // SAFETY: the caller keeps `GlobalAlloc::realloc`'s contract, and
        // the new block does not overlap the old one.
        unsafe {
            let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
            if !new.is_null() {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bumps_and_reuses_only_the_latest_block() {
        let bump = Bump::new();
        let word = Layout::from_size_align(8, 8).unwrap();
        // SAFETY: blocks are used as the layouts they were asked with.
        unsafe {
            let a = bump.alloc(word);
            let b = bump.alloc(Layout::from_size_align(3, 1).unwrap());
            assert_eq!(b as usize, a as usize + 8);
            // Aligned past the 3-byte block.
            let c = bump.alloc(word);
            assert_eq!(c as usize % 8, 0);
            assert_eq!(c as usize, a as usize + 16);
            // The latest block grows in place and is given back.
            assert_eq!(bump.realloc(c, word, 64), c);
            bump.dealloc(c, Layout::from_size_align(64, 8).unwrap());
            assert_eq!(bump.alloc(word), c);
            // An older block moves when it grows, keeping its bytes.
            a.write_bytes(7, 8);
            let moved = bump.realloc(a, word, 16);
            assert_ne!(moved, a);
            assert_eq!(*moved.add(7), 7);
        }
    }

    #[test]
    fn fails_cleanly_past_the_arena_without_growth() {
        let bump = Bump::new();
        // SAFETY: only addresses are compared.
        unsafe {
            assert!(
                !bump
                    .alloc(Layout::from_size_align(ARENA, 16).unwrap())
                    .is_null()
            );
            assert!(bump.alloc(Layout::from_size_align(1, 1).unwrap()).is_null());
        }
    }
}
