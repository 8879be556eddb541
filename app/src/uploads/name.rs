//! The client's filename, made safe to keep and show: metadata only, never a path.

/// Longest kept name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// What a missing or entirely unusable name becomes.
const FALLBACK: &str = "upload";

/// The last path component of `raw` (either separator), without control and
/// bidirectional-formatting characters (which can disguise an extension), without
/// leading dots or surrounding whitespace, at most `MAX_NAME_BYTES` bytes with the
/// extension kept when it has to be shortened.
pub fn sanitize(raw: Option<&str>) -> String {
    let raw = raw.unwrap_or_default();
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last.chars().filter(|c| !c.is_control() && !is_bidi_format(*c)).collect();
    // Dots and whitespace together: ". .bashrc" must not come out as ".bashrc".
    let trimmed = trim_dots_and_spaces(&cleaned);
    if trimmed.is_empty() {
        return FALLBACK.to_owned();
    }
    shorten(trimmed)
}

fn trim_dots_and_spaces(s: &str) -> &str {
    s.trim_matches(|c: char| c == '.' || c.is_whitespace())
}

fn is_bidi_format(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Cuts `name` to `MAX_NAME_BYTES` on a character boundary, keeping a short extension.
fn shorten(name: &str) -> String {
    if name.len() <= MAX_NAME_BYTES {
        return name.to_owned();
    }
    let ext = name.rfind('.').map(|i| &name[i..]).filter(|e| e.len() <= 16).unwrap_or("");
    let mut stem_end = MAX_NAME_BYTES - ext.len();
    while !name.is_char_boundary(stem_end) {
        stem_end -= 1;
    }
    // The cut may land after a dot or a space; without an extension that would end the name.
    let stem = &name[..stem_end];
    let stem = if ext.is_empty() { trim_dots_and_spaces(stem) } else { stem };
    format!("{stem}{ext}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_ordinary_names() {
        assert_eq!(sanitize(Some("holiday photo.jpg")), "holiday photo.jpg");
        assert_eq!(sanitize(Some("résumé (final).pdf")), "résumé (final).pdf");
    }

    #[test]
    fn drops_directories_of_either_kind() {
        assert_eq!(sanitize(Some("../../etc/passwd")), "passwd");
        assert_eq!(sanitize(Some("/etc/shadow")), "shadow");
        assert_eq!(sanitize(Some("C:\\Windows\\system32\\cmd.exe")), "cmd.exe");
        assert_eq!(sanitize(Some("..\\..\\boot.ini")), "boot.ini");
    }

    #[test]
    fn unusable_names_fall_back() {
        for raw in [None, Some(""), Some(".."), Some("../"), Some("   "), Some("\u{0}\u{7}"), Some("dir/")] {
            assert_eq!(sanitize(raw), "upload", "{raw:?}");
        }
    }

    #[test]
    fn strips_controls_bidi_and_leading_dots() {
        assert_eq!(sanitize(Some("a\r\nb\u{0}c.txt")), "abc.txt");
        assert_eq!(sanitize(Some("invoice\u{202E}fdp.exe")), "invoicefdp.exe");
        assert_eq!(sanitize(Some(".bashrc")), "bashrc");
        assert_eq!(sanitize(Some("  name.txt. . ")), "name.txt");
    }

    #[test]
    fn dots_and_whitespace_are_trimmed_together() {
        // Found by the `upload_name` fuzz target: ". .\0g-" came out as ".g-".
        assert_eq!(sanitize(Some(". .\0g-")), "g-");
        assert_eq!(sanitize(Some(" . .bashrc")), "bashrc");
        assert_eq!(sanitize(Some("name.\u{3000}.")), "name");
        assert_eq!(sanitize(Some("\u{3000}.x")), "x");
    }

    #[test]
    fn a_cut_never_leaves_a_dot_or_space_at_the_end() {
        let spaced = format!("{} tail-without-extension", "a".repeat(MAX_NAME_BYTES - 1));
        let name = sanitize(Some(&spaced));
        assert_eq!(name, "a".repeat(MAX_NAME_BYTES - 1));
        let dotted = format!("{}.{}", "b".repeat(MAX_NAME_BYTES - 1), "c".repeat(40));
        assert_eq!(sanitize(Some(&dotted)), "b".repeat(MAX_NAME_BYTES - 1));
        for name in [sanitize(Some(&spaced)), sanitize(Some(&dotted))] {
            assert_eq!(sanitize(Some(&name)), name, "idempotent");
        }
    }

    #[test]
    fn long_names_are_cut_on_a_char_boundary_keeping_the_extension() {
        let long = format!("{}.png", "é".repeat(300));
        let short = sanitize(Some(&long));
        assert!(short.len() <= MAX_NAME_BYTES, "{}", short.len());
        assert!(short.ends_with(".png"));
        assert!(short.starts_with("éé"));
    }
}
