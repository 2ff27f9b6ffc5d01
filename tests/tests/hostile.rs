//! The hostile-input suite (`xfed_tests::hostile`) on both binaries, with
//! counts that fit CI; `cargo bench -p xfed-tests --bench hostile` runs
//! issue 8's full counts.

use xfed_tests::hostile::{run_all, Counts};
use xfed_tests::BINARIES;

#[test]
fn hostile_suite_on_both_runtimes() {
    for bin in BINARIES {
        for report in run_all(bin, Counts::CI) {
            println!("{bin}: {report}");
        }
    }
}
