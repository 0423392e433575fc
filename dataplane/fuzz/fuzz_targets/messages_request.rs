#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ai_gateway::fuzzing::messages_request(data));
