#![no_main]
//! Fuzz target `tables`: see `harness::tables` for what the input means.
#[path = "../src/harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::tables(data));
