//! Every decoder of the on-disk format, fed arbitrary bytes: frames and
//! records, begin records found at any offset, segment headers, META and
//! the keyset. A decoder may refuse the bytes; it may never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shale_store::crypto::MasterKey;
use shale_store::journal::record::{begin_at, decode_body, read_frame};
use shale_store::journal::segment::SegmentHeader;
use shale_store::keyset::Keyset;
use shale_store::meta::Meta;

fuzz_target!(|bytes: &[u8]| {
    if let Ok((_, body)) = read_frame(bytes) {
        let _ = decode_body(body);
    }
    let _ = decode_body(bytes);
    let _ = begin_at(bytes);
    let _ = SegmentHeader::decode(bytes);
    let _ = Meta::decode(bytes);
    let _ = Keyset::decode(bytes, 7, None);
    let _ = Keyset::decode(bytes, 7, Some(&MasterKey::from_bytes([3; 32])));
});
