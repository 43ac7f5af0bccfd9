#![no_main]
//! Fuzz target `xpress`: see `harness::xpress` for what the input means.
#[path = "../src/harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::xpress(data));
