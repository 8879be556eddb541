//! The upload type sniffer: any bytes, fed whole and fed in chunks the way the upload
//! route feeds it (stopping once it says the file is hopeless), must get the same kind;
//! a file called text must be UTF-8 without binary control characters.
//!
//! The first input byte picks the chunk sizes; the rest is the file.

#![no_main]

use firehose_app::fuzzing::{Kind, Sniffer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pattern, file)) = data.split_first() else { return };
    let whole = {
        let mut s = Sniffer::new();
        s.feed(file);
        s.finish()
    };
    // Chunk sizes alternate between two picked by `pattern`: 1-8 and 1-32 bytes.
    let sizes = [usize::from(pattern & 7) + 1, usize::from(pattern >> 3) + 1];
    let mut s = Sniffer::new();
    let (mut at, mut i, mut hopeless_at) = (0, 0, None);
    while at < file.len() {
        let end = (at + sizes[i % 2]).min(file.len());
        // As `uploads::receive` does: a hopeless file is read on but no longer sniffed.
        if s.hopeless() {
            if hopeless_at.is_none() {
                hopeless_at = Some(at);
            }
        } else {
            s.feed(&file[at..end]);
        }
        at = end;
        i += 1;
    }
    let chunked = s.finish();
    assert_eq!(chunked, whole, "chunks of {sizes:?} (hopeless at {hopeless_at:?})");
    if s.hopeless() || hopeless_at.is_some() {
        assert_eq!(whole, None, "hopeless, yet the whole file is {whole:?}");
    }
    match whole {
        Some(Kind::Text) => {
            let text = std::str::from_utf8(file).expect("text is UTF-8");
            assert!(!text.is_empty());
            assert!(
                !text.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\u{0C}')),
                "text with a control character"
            );
        }
        Some(kind) => assert_eq!(Kind::from_content_type(kind.content_type()), Some(kind)),
        None => {}
    }
});
