#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ai_gateway::fuzzing::config_and_headers(data));
