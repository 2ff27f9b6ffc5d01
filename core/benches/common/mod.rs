//! The timing the core's benches share: warm up once, time `runs` runs,
//! report the median and the best.

#![allow(dead_code)]

use std::time::{Duration, Instant};

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
