//! Password hashing: argon2id with a random salt per password, stored as a PHC string.
//!
//! Hashing is deliberately slow (about 19 MiB and tens of milliseconds per call), so it
//! runs on the blocking pool, never on the async workers, and at most `MAX_CONCURRENT`
//! at once: a burst of logins from many addresses queues here instead of starting
//! hundreds of blocking threads that each hold 19 MiB.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use tokio::sync::Semaphore;

use crate::http::ApiError;

const MAX_CONCURRENT: usize = 4;
static PERMITS: Semaphore = Semaphore::const_new(MAX_CONCURRENT);

/// argon2id, version 0x13, m = 19 MiB, t = 2, p = 1: the crate's defaults, which are
/// OWASP's recommended minimum.
fn hasher() -> Argon2<'static> {
    Argon2::default()
}

fn hash_blocking(password: &str) -> Result<String, argon2::password_hash::Error> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)?;
    Ok(hasher().hash_password(password.as_bytes(), &salt)?.to_string())
}

/// Verifies against `phc`; an unparsable stored hash counts as a mismatch (and is
/// logged: it means the row was written by something else).
fn verify_blocking(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => hasher().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(err) => {
            tracing::warn!(%err, "stored password hash does not parse");
            false
        }
    }
}

/// A hash of a random password with the current parameters, verified against when the
/// account does not exist, so that an unknown email costs as much time as a wrong
/// password and the response time does not tell which it was. Made on first use (that
/// one call pays for two hashes; a single sample tells an attacker nothing).
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut random = [0u8; 24];
        rand::rng().fill_bytes(&mut random);
        hash_blocking(&format!("{random:?}")).expect("hashing a fixed-size password with a fresh salt cannot fail")
    })
}

async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    let _permit = PERMITS.acquire().await.map_err(|e| ApiError::Internal(format!("password permits: {e}")))?;
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::Internal(format!("password hashing task: {e}")))
}

/// Hashes a new password.
pub async fn hash(password: String) -> Result<String, ApiError> {
    run_blocking(move || hash_blocking(&password))
        .await?
        .map_err(|e| ApiError::Internal(format!("password hashing: {e}")))
}

/// Whether `password` matches `stored`. With no stored hash (unknown account, or a
/// token-only user without a password) the password is checked against a dummy hash
/// and the answer is `false`, in about the same time as a real check.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, ApiError> {
    run_blocking(move || match stored {
        Some(phc) => verify_blocking(&password, &phc),
        None => {
            let _ = verify_blocking(&password, dummy_hash());
            false
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_salted_argon2id_phc_strings_that_verify() {
        let a = hash("correct horse battery".into()).await.unwrap();
        let b = hash("correct horse battery".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "a random salt per hash");
        assert!(verify("correct horse battery".into(), Some(a.clone())).await.unwrap());
        assert!(!verify("correct horse batterY".into(), Some(a)).await.unwrap());
    }

    #[tokio::test]
    async fn missing_or_garbage_hashes_never_verify() {
        assert!(!verify("anything at all".into(), None).await.unwrap());
        assert!(!verify("anything at all".into(), Some("not a phc string".into())).await.unwrap());
    }
}
