//! The module's heap: a bump allocator.
//!
//! The vault runs every event in a fresh instance and drops it afterwards, so nothing allocated
//! here outlives one event, and freeing memory buys nothing: it all goes with the instance. A bump
//! allocator hands out memory by moving one pointer (it takes back only the most recent block, and
//! grows that one in place), where Rust's default (dlmalloc) spends hundreds of interpreted
//! instructions per call. Measured: handlers run about 18 % faster (`docs/BENCHMARKS.md`).
//!
//! New memory comes from `memory.grow`; past the vault's memory cap the growth traps, and the event
//! fails with a memory-limit error, as with any allocator. This is the module's only unsafe code:
//! [`GlobalAlloc`] is an unsafe trait and its methods deal in raw pointers. It runs only inside the
//! WASM sandbox, on one thread (wasm32 without the atomics feature), where the atomics below
//! compile to plain loads and stores.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

const PAGE: usize = 65_536;

/// The next free address and the end of the memory this allocator owns.
pub(crate) struct Bump {
    next: AtomicUsize,
    end: AtomicUsize,
}

#[global_allocator]
static HEAP: Bump = Bump { next: AtomicUsize::new(0), end: AtomicUsize::new(0) };

impl Bump {
    /// Carves `layout` out of the owned memory, if it fits.
    fn take(&self, layout: Layout) -> Option<usize> {
        let mask = layout.align().checked_sub(1)?;
        let start = self.next.load(Relaxed).checked_add(mask)? & !mask;
        let end = start.checked_add(layout.size())?;
        if end > self.end.load(Relaxed) {
            return None;
        }
        self.next.store(end, Relaxed);
        Some(start)
    }

    /// Grows the memory by enough pages for `layout` and carves it out.
    fn grow_and_take(&self, layout: Layout) -> Option<usize> {
        let pages = layout.size().checked_add(layout.align())?.div_ceil(PAGE);
        let previous = core::arch::wasm32::memory_grow(0, pages);
        if previous == usize::MAX {
            return None;
        }
        let base = previous.checked_mul(PAGE)?;
        // The first growth, or memory that is not contiguous with ours: start afresh at `base`.
        if base != self.end.load(Relaxed) {
            self.next.store(base, Relaxed);
        }
        self.end.store(base.checked_add(pages.checked_mul(PAGE)?)?, Relaxed);
        self.take(layout)
    }
}

#[allow(unsafe_code)] // see the module docs
// SAFETY (for the impl): every block handed out lies in linear memory this allocator took with
// `memory.grow` and has not handed out before, is aligned as asked, and is never handed out
// again while live: memory is only taken back when it is the most recent block (`dealloc`,
// `realloc` below), which Rust no longer uses once it frees or reallocates it.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.take(layout).or_else(|| self.grow_and_take(layout)) {
            // Linear memory has no Rust pointer to derive this one from; wasm32 addresses are
            // plain integers (as in every wasm32 allocator).
            Some(address) => core::ptr::with_exposed_provenance_mut(address),
            None => core::ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Only the most recent block comes back (a temporary freed at once); the rest goes with
        // the instance.
        if ptr.addr().checked_add(layout.size()) == Some(self.next.load(Relaxed)) {
            self.next.store(ptr.addr(), Relaxed);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let at = ptr.addr();
        // The most recent block grows (or shrinks) in place when the memory allows: a buffer
        // being written, the common case.
        if at.checked_add(layout.size()) == Some(self.next.load(Relaxed))
            && at.checked_add(new_size).is_some_and(|end| end <= self.end.load(Relaxed))
        {
            self.next.store(at.saturating_add(new_size), Relaxed);
            return ptr;
        }
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return core::ptr::null_mut();
        };
        // SAFETY: `new_layout` has a non-zero size (the caller's contract for `realloc`).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live, distinct (the new one was never handed out before)
            // and at least `min(old, new)` bytes long.
            unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
        }
        new
    }
}
