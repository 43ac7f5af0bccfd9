#![no_main]
//! Fuzz target `pe_codeview`: see `harness::pe_codeview` for what the input means.
#[path = "../src/harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::pe_codeview(data));
