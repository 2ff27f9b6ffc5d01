//! What the core's benches share: the timing (warm up once, time `runs`
//! runs, report the median and the best), and a counting allocator for
//! those that measure memory.

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// The system allocator, counting the bytes and the allocations live. A bench that measures memory installs it:
/// `#[global_allocator] static A: common::Counting = common::Counting;`
/// (the timing benches do not, so they pay nothing for it).
pub struct Counting;

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static ALLOCATIONS: AtomicI64 = AtomicI64::new(0);
static MADE: AtomicI64 = AtomicI64::new(0);

// SAFETY: every call goes to the system allocator unchanged; the counters
// are plain atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        MADE.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller keeps the system allocator's contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        ALLOCATIONS.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        MADE.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Bytes allocated and not freed (requested sizes: the allocator's own
/// rounding and headers are not counted).
pub fn live_bytes() -> i64 {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// Allocations not freed (each costs the allocator a header besides its
/// bytes).
pub fn live_allocations() -> i64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Allocations and reallocations made since start (each a call into the
/// allocator, freed or not).
pub fn allocations_made() -> i64 {
    MADE.load(Ordering::Relaxed)
}

/// (median, best) of `runs` timed calls of `f`, after one untimed call.
pub fn measure(runs: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    f();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    (times[runs / 2], times[0])
}

/// One line: `count` `unit` per run, as a rate and a time each.
pub fn report(
    what: &str,
    unit: &str,
    count: usize,
    runs: usize,
    (median, best): (Duration, Duration),
) {
    let per_s = |d: Duration| count as f64 / d.as_secs_f64();
    println!(
        "{what}: {:.0} {unit}/s median ({:.0} best), {:.2} µs each, over {runs} runs of {count}",
        per_s(median),
        per_s(best),
        median.as_secs_f64() * 1e6 / count as f64
    );
}

/// A figure for `--bench targets` (xfed-tests), which runs the benches and
/// gathers these lines into issue 11's table: `figure KEY VALUE`.
pub fn figure(key: &str, value: f64) {
    println!("figure {key} {value}");
}
