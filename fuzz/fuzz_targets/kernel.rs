#![no_main]
//! Fuzz target `kernel`: see `harness::kernel` for what the input means.
#[path = "../src/harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::kernel(data));
