//! Whatever bytes a server sends, reading them never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, &[u8])| {
    let (status, body) = input;
    if let Ok(reply) = drover_virtualmin::parse_reply(status, body.to_vec()) {
        for record in reply.records {
            let _ = drover_virtualmin::DomainInfo::from_record(record);
        }
        for record in drover_virtualmin::text_records(&reply.output) {
            let _ = drover_virtualmin::DomainInfo::from_record(record);
        }
    }
});
