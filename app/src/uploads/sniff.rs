//! What a file is, decided by its bytes alone: the allow-list of kinds and the magic
//! numbers that identify them, fed chunk by chunk as the upload streams in.
//!
//! The filename and the client's `Content-Type` are never consulted: both are chosen by
//! the sender and prove nothing. A file is one of the binary kinds when it starts with
//! that kind's signature, and text when the whole of it is UTF-8 without NUL or other
//! control characters (tab, newline, carriage return and form feed allowed). Text that
//! a browser would sniff as HTML or XML (WHATWG MIME sniffing: `<html`, `<script`,
//! `<?xml`, … after leading whitespace) is refused as well, so the uploads can never
//! host a page, whatever headers it is later served with.

/// The kinds of file the app accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Jpeg,
    Png,
    Gif,
    Webp,
    Pdf,
    Text,
}

impl Kind {
    pub const ALL: [Kind; 6] = [Kind::Jpeg, Kind::Png, Kind::Gif, Kind::Webp, Kind::Pdf, Kind::Text];

    /// The `Content-Type` it is stored and served with.
    pub fn content_type(self) -> &'static str {
        match self {
            Kind::Jpeg => "image/jpeg",
            Kind::Png => "image/png",
            Kind::Gif => "image/gif",
            Kind::Webp => "image/webp",
            Kind::Pdf => "application/pdf",
            Kind::Text => "text/plain; charset=utf-8",
        }
    }

    /// The extension of the stored file.
    pub fn extension(self) -> &'static str {
        match self {
            Kind::Jpeg => "jpg",
            Kind::Png => "png",
            Kind::Gif => "gif",
            Kind::Webp => "webp",
            Kind::Pdf => "pdf",
            Kind::Text => "txt",
        }
    }

    /// Images display in place; documents are downloaded, never rendered by the
    /// browser in the app's origin.
    pub fn inline(self) -> bool {
        !matches!(self, Kind::Pdf | Kind::Text)
    }

    pub fn from_content_type(content_type: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.content_type() == content_type)
    }
}

/// The most bytes any signature or markup check looks at.
const HEAD_LEN: usize = 512;

/// Decides the kind of a file from its bytes, fed in order in chunks of any size.
#[derive(Debug, Default)]
pub struct Sniffer {
    /// The first `HEAD_LEN` bytes.
    head: Vec<u8>,
    len: u64,
    /// Still possibly text: valid UTF-8 without control characters so far.
    text: bool,
    /// The bytes of a UTF-8 sequence cut by the end of the previous chunk (at most 3).
    carry: Vec<u8>,
}

impl Sniffer {
    pub fn new() -> Self {
        Self { text: true, ..Self::default() }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        if self.head.len() < HEAD_LEN {
            let take = chunk.len().min(HEAD_LEN - self.head.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.len += chunk.len() as u64;
        if self.text && self.binary_kind().is_none() {
            self.feed_text(chunk);
        }
    }

    /// True once no further bytes can make the file acceptable, so the caller may
    /// stop storing it (it must still read it to answer cleanly).
    pub fn hopeless(&self) -> bool {
        !self.text && self.head.len() >= SIGNATURE_LEN && self.binary_kind().is_none()
    }

    /// The kind of the whole file fed so far; `None` when it is none of the allowed kinds.
    pub fn finish(&self) -> Option<Kind> {
        if let Some(kind) = self.binary_kind() {
            return Some(kind);
        }
        let text = self.text && self.carry.is_empty() && self.len > 0 && !looks_like_markup(&self.head);
        text.then_some(Kind::Text)
    }

    fn binary_kind(&self) -> Option<Kind> {
        signature(&self.head)
    }

    fn feed_text(&mut self, chunk: &[u8]) {
        if self.carry.is_empty() {
            self.check_text(chunk);
        } else {
            let mut joined = std::mem::take(&mut self.carry);
            joined.extend_from_slice(chunk);
            self.check_text(&joined);
        }
    }

    /// Checks `bytes` (starting on a character boundary); keeps a trailing partial
    /// character in `carry` for the next chunk.
    fn check_text(&mut self, bytes: &[u8]) {
        let (valid, rest) = match std::str::from_utf8(bytes) {
            Ok(s) => (s, &[][..]),
            Err(e) if e.error_len().is_none() => {
                // The input ends inside a character: check up to it, keep the rest.
                let (valid, rest) = bytes.split_at(e.valid_up_to());
                (std::str::from_utf8(valid).unwrap_or_default(), rest)
            }
            Err(_) => {
                self.text = false;
                return;
            }
        };
        if valid.chars().any(is_binary_control) {
            self.text = false;
            return;
        }
        self.carry = rest.to_vec();
    }
}

/// The longest signature, in bytes.
const SIGNATURE_LEN: usize = 12;

fn signature(head: &[u8]) -> Option<Kind> {
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Kind::Jpeg)
    } else if head.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some(Kind::Png)
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        Some(Kind::Gif)
    } else if head.len() >= 12 && head.starts_with(b"RIFF") && &head[8..12] == b"WEBP" {
        Some(Kind::Webp)
    } else if head.starts_with(b"%PDF-") {
        Some(Kind::Pdf)
    } else {
        None
    }
}

/// Control characters other than the whitespace of ordinary text: NUL, the rest of
/// C0, DEL and C1.
fn is_binary_control(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\u{0C}')
}

/// The WHATWG "identify an unknown MIME type" HTML and XML patterns: after optional
/// whitespace (and a byte order mark), one of these tags, case-insensitively, ended
/// by a space or `>`.
fn looks_like_markup(head: &[u8]) -> bool {
    const TAGS: [&[u8]; 19] = [
        b"<!doctype html",
        b"<html",
        b"<head",
        b"<script",
        b"<iframe",
        b"<h1",
        b"<div",
        b"<font",
        b"<table",
        b"<a",
        b"<style",
        b"<title",
        b"<b",
        b"<body",
        b"<br",
        b"<p",
        b"<!--",
        b"<svg",
        b"<object",
    ];
    let head = head.strip_prefix("\u{FEFF}".as_bytes()).unwrap_or(head);
    let start = head.iter().position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0C)).unwrap_or(head.len());
    let head = &head[start..];
    if head.starts_with(b"<?xml") {
        return true;
    }
    TAGS.iter().any(|tag| {
        head.len() > tag.len()
            && head[..tag.len()].eq_ignore_ascii_case(tag)
            && (tag.ends_with(b"--") || matches!(head[tag.len()], b' ' | b'>' | b'\t' | b'\n' | b'\r' | 0x0C | b'/'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sniff(bytes: &[u8]) -> Option<Kind> {
        let mut s = Sniffer::new();
        s.feed(bytes);
        s.finish()
    }

    /// Feeds `bytes` in chunks of `n`, so every split point gets exercised.
    fn sniff_chunked(bytes: &[u8], n: usize) -> Option<Kind> {
        let mut s = Sniffer::new();
        bytes.chunks(n).for_each(|c| s.feed(c));
        s.finish()
    }

    const PNG: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, b'I', b'H', b'D', b'R'];

    #[test]
    fn recognises_each_signature() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F']), Some(Kind::Jpeg));
        assert_eq!(sniff(PNG), Some(Kind::Png));
        assert_eq!(sniff(b"GIF87a\x01\x00\x01\x00"), Some(Kind::Gif));
        assert_eq!(sniff(b"GIF89a\x01\x00\x01\x00\x80\x00"), Some(Kind::Gif));
        assert_eq!(sniff(b"RIFF\x24\x00\x00\x00WEBPVP8 "), Some(Kind::Webp));
        assert_eq!(sniff(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n"), Some(Kind::Pdf));
        assert_eq!(sniff("plain text, ünïcödé ✓\r\n\tand tabs\x0c".as_bytes()), Some(Kind::Text));
    }

    #[test]
    fn signatures_split_across_chunks_are_recognised() {
        for n in 1..=4 {
            assert_eq!(sniff_chunked(PNG, n), Some(Kind::Png));
            assert_eq!(sniff_chunked(b"RIFF\x24\x00\x00\x00WEBPVP8 ", n), Some(Kind::Webp));
        }
    }

    #[test]
    fn near_misses_are_refused() {
        assert_eq!(sniff(&[0xFF, 0xD8]), None, "truncated jpeg");
        assert_eq!(sniff(&PNG[..7]), None, "truncated png");
        assert_eq!(sniff(b"GIF88a\x01\x00\x01\x00\x80\x00"), None);
        assert_eq!(sniff(b"RIFF\x24\x00\x00\x00WAVEfmt \x00\x00"), None, "a RIFF that is not WEBP");
        assert_eq!(sniff(b"RIFF\x24\x00\x00\x00WEB"), None, "short RIFF");
    }

    #[test]
    fn binaries_are_refused() {
        assert_eq!(sniff(b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00"), None);
        assert_eq!(sniff(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00"), None);
        assert_eq!(sniff(b"PK\x03\x04\x14\x00\x00\x00\x08\x00"), None);
        assert_eq!(sniff(b"hello\0world"), None, "NUL");
        assert_eq!(sniff(b"bell\x07"), None, "C0 control");
        assert_eq!(sniff(b"del\x7f"), None, "DEL");
        assert_eq!(sniff("c1\u{85}".as_bytes()), None, "C1 control");
        assert_eq!(sniff(b"latin-1 caf\xe9"), None, "not UTF-8");
        assert_eq!(sniff(b""), None, "empty");
    }

    #[test]
    fn a_binary_byte_late_in_the_file_is_caught() {
        let mut bytes = "a".repeat(100_000).into_bytes();
        bytes.push(0);
        bytes.extend_from_slice(b"more text");
        assert_eq!(sniff_chunked(&bytes, 4096), None);
    }

    #[test]
    fn utf8_split_across_chunks_is_text_and_a_cut_sequence_is_not() {
        let text = "€uro ✓ 😀 ".repeat(50);
        for n in 1..=7 {
            assert_eq!(sniff_chunked(text.as_bytes(), n), Some(Kind::Text), "chunk size {n}");
        }
        let cut = &"ok 😀".as_bytes()[..5];
        assert_eq!(sniff_chunked(cut, 1), None, "ends inside a character");
    }

    #[test]
    fn html_and_xml_are_refused_even_though_they_are_text() {
        assert_eq!(sniff(b"<!DOCTYPE html><html><body>hi</body></html>"), None);
        assert_eq!(sniff(b"\n  <HTML>\n<script>alert(1)</script>"), None);
        assert_eq!(sniff(b"<script>alert(1)</script>"), None);
        assert_eq!(sniff(b"<?xml version=\"1.0\"?><svg/>"), None);
        assert_eq!(sniff(b"<svg onload=alert(1)>"), None);
        assert_eq!(sniff(b"<!-- comment -->"), None);
        assert_eq!(sniff("\u{FEFF}<p>bom first</p>".as_bytes()), None);
        assert_eq!(sniff(b"<a href=x>link</a>"), None);
        // Text that merely mentions markup is still text.
        assert_eq!(sniff(b"x < y and <b is not a tag"), Some(Kind::Text));
        assert_eq!(sniff(b"<abc> is not on the list"), Some(Kind::Text));
    }

    #[test]
    fn hopeless_only_once_nothing_can_match() {
        let mut s = Sniffer::new();
        s.feed(b"PK\x03");
        assert!(!s.hopeless(), "too short to tell");
        s.feed(b"\x04\x14\x00\x00\x00\x08\x00\x00\x00");
        assert!(s.hopeless());
        let mut s = Sniffer::new();
        s.feed(PNG);
        assert!(!s.hopeless());
    }

    #[test]
    fn content_types_round_trip() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_content_type(kind.content_type()), Some(kind));
        }
        assert_eq!(Kind::from_content_type("text/html"), None);
    }
}
