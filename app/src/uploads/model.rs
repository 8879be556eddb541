//! An upload as the rest of the app sees it: the unguessable key that names it in URLs
//! and on disk, its metadata, and its JSON form.

use rand::RngCore;
use serde_json::{Value, json};

use super::Kind;

/// The public name of an upload: 128 random bits as 32 lowercase hex digits. It is the
/// only part of a stored file's path that comes from a request, so anything that is
/// not exactly this shape is turned away before the filesystem is touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadKey(String);

impl UploadKey {
    const LEN: usize = 32;

    pub fn generate() -> Self {
        let mut bytes = [0u8; Self::LEN / 2];
        rand::rng().fill_bytes(&mut bytes);
        Self(hex(&bytes))
    }

    /// `Some` only for the exact shape `generate` makes.
    pub fn parse(raw: &str) -> Option<Self> {
        let shaped = raw.len() == Self::LEN && raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        shaped.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A stored upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub id: i64,
    pub key: UploadKey,
    pub user_id: i64,
    pub kind: Kind,
    pub size: i64,
    /// The client's filename, sanitised; metadata only, never part of a path.
    pub original_name: String,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    pub inserted_at: String,
}

impl Upload {
    /// Where the file is served.
    pub fn url(&self) -> String {
        format!("/uploads/{}", self.key.as_str())
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "url": self.url(),
            "content_type": self.kind.content_type(),
            "size": self.size,
            "original_name": self.original_name,
        })
    }
}

/// An upload received in full, about to be recorded.
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub key: UploadKey,
    pub kind: Kind,
    pub size: i64,
    pub original_name: String,
    pub sha256: String,
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_differ() {
        let a = UploadKey::generate();
        let b = UploadKey::generate();
        assert_ne!(a, b);
        assert_eq!(UploadKey::parse(a.as_str()), Some(a));
    }

    #[test]
    fn anything_else_is_not_a_key() {
        for raw in [
            "",
            "../../Cargo.toml",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "0123456789ABCDEF0123456789ABCDEF",
            "0123456789abcdef0123456789abcde/",
            "0123456789abcdef0123456789abcd.g",
            "０123456789abcdef0123456789abcd",
        ] {
            assert_eq!(UploadKey::parse(raw), None, "{raw:?}");
        }
    }
}
