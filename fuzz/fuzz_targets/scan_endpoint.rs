#![no_main]
//! Fuzz target `scan_endpoint`: see `harness::scan_endpoint` for what the input means.
#[path = "../src/harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::scan_endpoint(data));
