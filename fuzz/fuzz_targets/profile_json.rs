#![no_main]
//! Fuzz target `profile_json`: see `harness::profile_json` for what the input means.
#[path = "../src/harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::profile_json(data));
