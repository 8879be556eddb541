//! `phx_ref`: the 16-character reference that names one tracked meta.
//!
//! Phoenix builds its refs from 12 bytes (time, node/process hash, a unique integer)
//! encoded as unpadded base64url, e.g. `GOt6oOKtEgaevw1R`. firehose does the same with
//! a 64-bit counter that starts at the wall clock in nanoseconds when the generator is
//! created, followed by a 32-bit random salt. The counter only ever moves forward, so a
//! generator never hands out the same ref twice; starting at the clock keeps refs from
//! a restarted server distinct from the ones clients still hold; the salt keeps two
//! servers that start in the same nanosecond apart. A ref is `Copy` and lives inline
//! (no allocation).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Length of a ref in characters (12 bytes of base64url, no padding).
pub const PHX_REF_LEN: usize = 16;

/// One meta's reference: 16 ASCII characters from the base64url alphabet.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhxRef([u8; PHX_REF_LEN]);

impl PhxRef {
    /// Encodes 12 raw bytes.
    fn from_bytes(bytes: &[u8; 12]) -> Self {
        let mut out = [0u8; PHX_REF_LEN];
        // 12 bytes always encode to exactly 16 characters, so this cannot fail.
        let written = URL_SAFE_NO_PAD.encode_slice(bytes, &mut out).unwrap_or(0);
        debug_assert_eq!(written, PHX_REF_LEN);
        Self(out)
    }

    /// Parses a ref received from a client; `None` unless it is 16 base64url characters.
    pub fn parse(s: &str) -> Option<Self> {
        let bytes: [u8; PHX_REF_LEN] = s.as_bytes().try_into().ok()?;
        bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_').then_some(Self(bytes))
    }

    pub fn as_str(&self) -> &str {
        // Only ever built from base64url output or checked ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for PhxRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for PhxRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhxRef({})", self.as_str())
    }
}

impl serde::Serialize for PhxRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Hands out refs that are unique for the life of the server and never reused.
/// Shared by every topic (lock-free).
#[derive(Debug)]
pub struct PhxRefGen {
    counter: AtomicU64,
    salt: [u8; 4],
}

impl PhxRefGen {
    /// A generator whose counter starts at `start` with a fixed `salt` (deterministic,
    /// for tests and for callers that bring their own node id).
    pub fn new(start: u64, salt: u32) -> Self {
        Self { counter: AtomicU64::new(start), salt: salt.to_be_bytes() }
    }

    /// A generator starting at the current wall clock (ns) with a random salt.
    pub fn from_clock() -> Self {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Self::new(now, rand::random())
    }

    /// The process-wide generator, created on first use.
    pub fn global() -> Arc<Self> {
        static GLOBAL: OnceLock<Arc<PhxRefGen>> = OnceLock::new();
        GLOBAL.get_or_init(|| Arc::new(Self::from_clock())).clone()
    }

    /// The next ref.
    pub fn next_ref(&self) -> PhxRef {
        let n = self.counter.fetch_add(1, Relaxed);
        let mut bytes = [0u8; 12];
        bytes[..8].copy_from_slice(&n.to_be_bytes());
        bytes[8..].copy_from_slice(&self.salt);
        PhxRef::from_bytes(&bytes)
    }
}
