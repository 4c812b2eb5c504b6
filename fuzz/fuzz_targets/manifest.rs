#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| archiver::fuzzing::manifest(data));
