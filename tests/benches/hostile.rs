//! The hostile-input suite at issue 8's full counts, on release builds of
//! both binaries: `cargo bench -p xfed-tests --bench hostile`. Prints what
//! each attack did to memory and descriptors; fails if the process died,
//! leaked or stopped serving.

use xfed_tests::hostile::{run_all, Counts};
use xfed_tests::release_binary;

fn main() {
    for (package, bin) in [("xfed-tokio", "xfed"), ("xfed-async-std", "xfed-async-std")] {
        // Built next to this bench, where the suite starts binaries from.
        release_binary(package, bin);
        for report in run_all(bin, Counts::FULL) {
            println!("{bin}: {report}");
        }
    }
}
