#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| credhost::api::fuzzing::query(data));
