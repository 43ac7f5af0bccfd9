#![no_main]
//! Fuzz target `paging`: see `harness::paging` for what the input means.
#[path = "../src/harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::paging(data));
