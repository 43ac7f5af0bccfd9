#![no_main]
//! Fuzz target `container`: see `harness::container` for what the input means.
#[path = "../src/harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::container(data));
