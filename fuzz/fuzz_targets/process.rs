//! process: arbitrary bytes through berth::fuzz_process (see src/lib.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    berth::fuzz_process(data);
});
