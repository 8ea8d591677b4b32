#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zeroimage::fuzzing::signature(data));
