//! The hostile-input suite at issue 8's full counts, on both binaries
//! (release builds): `cargo bench -p xfed-tests --bench hostile`. Prints
//! what each attack did to memory and descriptors; fails if the process
//! died, leaked or stopped serving.

use xfed_tests::hostile::{run_all, Counts};
use xfed_tests::BINARIES;

fn main() {
    for bin in BINARIES {
        for report in run_all(bin, Counts::FULL) {
            println!("{bin}: {report}");
        }
    }
}
