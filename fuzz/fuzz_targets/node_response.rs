#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tokenroute::fuzzing::node_response(data));
