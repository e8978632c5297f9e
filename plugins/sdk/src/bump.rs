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
/// Enough for a call many times the usual size (a `normalize` of a typical
/// property takes about 1 KiB); and not more, as the host walks the whole
/// memory's page table on every reset (256 KiB cost HOST about 0.01× of a
/// call).
const ARENA: usize = 64 * 1024;
#[cfg(target_arch = "wasm32")]
const PAGE: usize = 64 * 1024;
/// The host's page: what it resets after a call, whole, once any of it
/// was written.
const HOST_PAGE: usize = 4096;

/// The arena, then where the next block goes and where the current region
/// ends (0, 0: not started).
///
/// The arena is served from its last host page first: that page also holds
/// the two words below, and the statics the linker puts after the arena
/// (the bindings' return area), which every call writes anyway. A call
/// that allocates a few KiB then dirties no page of its own besides its
/// stack, where serving from the arena's start would dirty two or three
/// more (the first shares its page with the module's data), each one a
/// page the host copies back on every call.
#[repr(C, align(16))]
pub struct Bump {
    arena: UnsafeCell<[u8; ARENA]>,
    next: UnsafeCell<usize>,
    end: UnsafeCell<usize>,
}

// SAFETY: the component model gives a guest one thread, and the allocator
// is only ever installed in wasm guests.
unsafe impl Sync for Bump {}

impl Bump {
    pub const fn new() -> Self {
        Self {
            arena: UnsafeCell::new([0; ARENA]),
            next: UnsafeCell::new(0),
            end: UnsafeCell::new(0),
        }
    }

    /// The arena's two regions, in the order they are served: the part of
    /// its last host page before the words above, then the rest.
    fn regions(&self) -> [(usize, usize); 2] {
        let start = self.arena.get() as usize;
        let stop = start + ARENA;
        let tail = (stop & !(HOST_PAGE - 1)).max(start);
        [(tail, stop), (start, tail)]
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

/// `layout`'s block from the region that `next` is in and `end` ends, if
/// it fits.
fn take(next: &mut usize, end: usize, layout: Layout) -> Option<*mut u8> {
    let start = next.checked_next_multiple_of(layout.align())?;
    let stop = start.checked_add(layout.size())?;
    if stop > end {
        return None;
    }
    *next = stop;
    Some(start as *mut u8)
}

unsafe impl GlobalAlloc for Bump {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: one thread, and no reference to the cells outlives this call.
        let (next, end) = unsafe { (&mut *self.next.get(), &mut *self.end.get()) };
        let [tail, rest] = self.regions();
        // An arena that ends on a page boundary has no such page.
        let has_tail = tail.0 < tail.1;
        if *end == 0 {
            (*next, *end) = if has_tail { tail } else { rest };
        }
        if let Some(block) = take(next, *end, layout) {
            return block;
        }
        // What is left of a region is abandoned: blocks are small next to
        // a page, so little is lost.
        if has_tail && *end == tail.1 {
            (*next, *end) = rest;
            if let Some(block) = take(next, *end, layout) {
                return block;
            }
        }
        let Some(region) = layout
            .size()
            .checked_add(layout.align())
            .and_then(Self::grow)
        else {
            return null_mut();
        };
        (*next, *end) = region;
        take(next, *end, layout).unwrap_or(null_mut())
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as in `alloc`.
        let next = unsafe { &mut *self.next.get() };
        if ptr as usize + layout.size() == *next {
            *next = ptr as usize;
        }
    }

    #[inline]
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

    /// A bump whose arena starts `offset` bytes (a multiple of 16) into a
    /// host page, as the linker might place it. Zeroed memory is a bump not
    /// started yet; it is never freed.
    fn bump_at(offset: usize) -> &'static Bump {
        let layout =
            Layout::from_size_align(core::mem::size_of::<Bump>() + HOST_PAGE, HOST_PAGE).unwrap();
        // SAFETY: the block is large enough for a `Bump` at `offset`, and
        // all zeros is a valid `Bump`.
        unsafe {
            let base = alloc::alloc::alloc_zeroed(layout);
            assert!(!base.is_null());
            &*base.add(offset).cast::<Bump>()
        }
    }

    fn byte_block(size: usize) -> Layout {
        Layout::from_size_align(size, 1).unwrap()
    }

    #[test]
    fn bumps_and_reuses_only_the_latest_block() {
        let bump = bump_at(2048);
        let word = Layout::from_size_align(8, 8).unwrap();
        // SAFETY: blocks are used as the layouts they were asked with.
        unsafe {
            let a = bump.alloc(word);
            let b = bump.alloc(byte_block(3));
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
    fn serves_the_last_page_first_then_the_rest_then_nothing_without_growth() {
        let bump = bump_at(1024);
        let arena = bump.arena.get() as usize;
        // SAFETY: only addresses are compared.
        unsafe {
            // The last page holds the arena's last 1024 bytes, the bump's
            // own words after them.
            let first = bump.alloc(byte_block(1000)) as usize;
            assert_eq!(first, arena + ARENA - 1024);
            assert_eq!(first / HOST_PAGE, bump.next.get() as usize / HOST_PAGE);
            assert_eq!(bump.alloc(byte_block(24)) as usize, first + 1000);
            // The page is full: the rest of the arena, from its start.
            assert_eq!(bump.alloc(byte_block(1)) as usize, arena);
            assert_eq!(bump.alloc(byte_block(ARENA - 1025)) as usize, arena + 1);
            assert!(bump.alloc(byte_block(1)).is_null());
        }
    }

    #[test]
    fn fails_cleanly_past_the_arena_without_growth() {
        // An arena that ends on a page boundary shares no page: it is
        // served from its start, whole.
        let bump = bump_at(0);
        // SAFETY: only addresses are compared.
        unsafe {
            let arena = bump.arena.get() as usize;
            assert_eq!(
                bump.alloc(Layout::from_size_align(ARENA, 16).unwrap()) as usize,
                arena
            );
            assert!(bump.alloc(byte_block(1)).is_null());
        }
    }
}
