//! cli: an argv through berth::fuzz_cli (clap parsing plus the commands' argument checks).
//! The input is split on NUL bytes into arguments, so seeds are plain `arg\0arg\0...` files.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let args: Vec<String> = data
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    berth::fuzz_cli(&args);
});
