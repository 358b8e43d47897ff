//! A global allocator that makes huge, untouched reservations cheap, so a Kafka frame
//! that declares billions of array elements cannot abort the process.
//!
//! The `kafka-protocol` decoders (0.18) call `Vec::with_capacity(n)` with an element
//! count read off the wire before decoding any element (upstream: kafka-protocol-rs
//! pull requests 152, 161 and 200, open). A ten-byte frame can thus ask for tens of
//! gigabytes; the system allocator refuses and Rust aborts the whole broker. Here,
//! requests of [`HUGE`] bytes or more are served by an anonymous `MAP_NORESERVE`
//! mapping instead: it costs address space only, pages are committed when written, and
//! the decoder fails on the short buffer long before writing much. Everything smaller
//! goes to the system allocator unchanged.
//!
//! Invariants: a huge block is always a whole mapping of exactly its (page-rounded)
//! size, freed with `munmap`; alignment above a page falls back to the system
//! allocator; a failed mapping returns null, as `GlobalAlloc` requires.

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations from this size up are mapped lazily.
pub const HUGE: usize = 1 << 30;
const PAGE: usize = 4096;

/// Use as `#[global_allocator] static A: LazyHuge = LazyHuge;`.
pub struct LazyHuge;

fn mapped(layout: &Layout) -> bool {
    layout.size() >= HUGE && layout.align() <= PAGE
}

fn rounded(size: usize) -> usize {
    size.div_ceil(PAGE) * PAGE
}

// SAFETY: every method upholds GlobalAlloc's contract: huge blocks come from mmap
// (page-aligned, so any alignment up to a page holds, zero-filled) and are returned
// with munmap of the same rounded size; other blocks are the system allocator's.
unsafe impl GlobalAlloc for LazyHuge {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !mapped(&layout) {
            // SAFETY: forwarded with the caller's valid layout.
            return unsafe { System.alloc(layout) };
        }
        // SAFETY: an anonymous private mapping with no address hint touches no memory
        // of ours; failure is reported as MAP_FAILED and turned into null.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                rounded(layout.size()),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            std::ptr::null_mut()
        } else {
            p.cast()
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if mapped(&layout) {
            // SAFETY: fresh anonymous mappings are zero-filled.
            unsafe { self.alloc(layout) }
        } else {
            // SAFETY: forwarded with the caller's valid layout.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if mapped(&layout) {
            // SAFETY: `ptr` came from `alloc` with this layout: one whole mapping.
            unsafe {
                libc::munmap(ptr.cast(), rounded(layout.size()));
            }
        } else {
            // SAFETY: `ptr` came from the system allocator with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` with `layout.align()` is valid.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !mapped(&layout) && !mapped(&new_layout) {
            // SAFETY: both sides are the system allocator's.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        if mapped(&layout) && mapped(&new_layout) {
            // SAFETY: `ptr` is one whole mapping of the old rounded size; mremap moves or
            // resizes it without copying pages.
            let p = unsafe {
                libc::mremap(
                    ptr.cast(),
                    rounded(layout.size()),
                    rounded(new_size),
                    libc::MREMAP_MAYMOVE,
                )
            };
            return if p == libc::MAP_FAILED {
                std::ptr::null_mut()
            } else {
                p.cast()
            };
        }
        // SAFETY: a fresh block of the new layout, the old one's bytes copied over (the
        // smaller of both sizes), then the old block freed the way it was allocated.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_untouched_reservations_are_cheap_and_usable() {
        let a = LazyHuge;
        // 64 GiB: more than this machine has, fine as address space.
        let layout = Layout::from_size_align(64 << 30, 8).unwrap();
        // SAFETY: non-zero layout; the block is written within bounds and freed once.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            *p.add(12345) = 7;
            assert_eq!(*p.add(12345), 7);
            let q = a.realloc(p, layout, 2 << 30);
            assert_eq!(*q.add(12345), 7);
            a.dealloc(q, Layout::from_size_align(2 << 30, 8).unwrap());
        }
        // Small blocks go to the system allocator and shrink out of a mapping fine.
        let small = Layout::from_size_align(64, 8).unwrap();
        // SAFETY: as above.
        unsafe {
            let p = a.alloc(small);
            assert!(!p.is_null());
            a.dealloc(p, small);
            let big = Layout::from_size_align(HUGE, 8).unwrap();
            let p = a.alloc(big);
            *p = 9;
            let q = a.realloc(p, big, 100);
            assert_eq!(*q, 9);
            a.dealloc(q, Layout::from_size_align(100, 8).unwrap());
        }
    }
}
