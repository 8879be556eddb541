//! Secrets handed to clients — API tokens and session tokens — and the CSRF token of a
//! session. Each secret is 256 random bits, shown to its owner once and stored only as
//! a SHA-256 hash.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A freshly generated secret (an API token or a session token), to be shown to its
/// owner once.
pub struct ApiToken(String);

impl ApiToken {
    /// 256 random bits, base64url.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

/// What the database keeps of a token. Lookups go by hash, so comparing a presented
/// token never touches the secret byte by byte: an attacker timing the lookup learns
/// about the hash of their guess, which tells nothing about any real token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Domain separation: the CSRF token can never equal the stored session hash.
const CSRF_CONTEXT: &[u8] = b"firehose csrf v1\0";

/// The CSRF token of the session whose cookie holds `session_token`.
///
/// Derived rather than stored: it is a hash of the session secret, so only someone who
/// knows the cookie can compute it, it needs no column, and the database (which holds
/// a different hash of the session token) does not reveal it. A cross-site page can
/// make the browser send the cookie but can neither read it nor this token.
pub fn csrf_token(session_token: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(CSRF_CONTEXT);
    hasher.update(session_token.as_bytes());
    URL_SAFE_NO_PAD.encode(hasher.finalize())
}

/// Whether `presented` is the CSRF token of `session_token`, compared in constant time.
pub fn csrf_matches(session_token: &str, presented: &str) -> bool {
    let expected = csrf_token(session_token);
    // Lengths are public (every valid token has the same one); the bytes are not.
    expected.as_bytes().ct_eq(presented.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashes_stable() {
        let a = ApiToken::generate();
        let b = ApiToken::generate();
        assert_ne!(a.as_str(), b.as_str());
        assert_eq!(a.as_str().len(), 43);
        assert_eq!(a.hash(), TokenHash::of(a.as_str()));
    }

    #[test]
    fn csrf_tokens_belong_to_one_session() {
        let s1 = ApiToken::generate();
        let s2 = ApiToken::generate();
        let t1 = csrf_token(s1.as_str());
        assert!(csrf_matches(s1.as_str(), &t1));
        assert!(!csrf_matches(s2.as_str(), &t1));
        assert!(!csrf_matches(s1.as_str(), ""));
        assert!(!csrf_matches(s1.as_str(), &t1[..t1.len() - 1]));
        // Not the stored hash, not the token itself.
        assert_ne!(t1, URL_SAFE_NO_PAD.encode(s1.hash().as_bytes()));
        assert_ne!(t1, s1.as_str());
    }
}
