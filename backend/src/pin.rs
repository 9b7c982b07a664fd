//! PIN hashing and unique ids.
//!
//! A 4-digit PIN has 10,000 values, so no hash makes a stolen database safe against brute force; the
//! persistent attempt counter is the real control. Hashing with a per-account salt keeps PINs out of dumps,
//! backups and logs and stops identical PINs from looking identical.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// Domain separation so these hashes cannot be confused with any other SHA-256 in the system.
const PIN_DOMAIN: &[u8] = b"voxgate-backend pin v1\0";

pub(crate) const SALT_LEN: usize = 16;

pub(crate) fn hash_pin(salt: &[u8], pin: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(PIN_DOMAIN);
    h.update(salt);
    h.update(pin.as_bytes());
    h.finalize().into()
}

/// Compares without an early exit so timing does not tell how many leading bytes matched.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Unpredictable, unique bytes without an RNG dependency: std's `RandomState` keys come from the OS, mixed
/// with the time, the process id and a counter. Salts and idempotency keys need uniqueness, not secrecy.
pub(crate) fn unique_bytes() -> [u8; 32] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut h = Sha256::new();
    for _ in 0..2 {
        let mut s = RandomState::new().build_hasher();
        s.write_u64(n);
        h.update(s.finish().to_le_bytes());
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    h.update(nanos.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(n.to_le_bytes());
    h.finalize().into()
}

pub(crate) fn new_salt() -> [u8; SALT_LEN] {
    let mut salt = [0u8; SALT_LEN];
    salt.copy_from_slice(&unique_bytes()[..SALT_LEN]);
    salt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_salt_and_pin() {
        let a = new_salt();
        let b = new_salt();
        assert_ne!(a, b);
        assert_eq!(hash_pin(&a, "2580"), hash_pin(&a, "2580"));
        assert_ne!(hash_pin(&a, "2580"), hash_pin(&b, "2580"));
        assert_ne!(hash_pin(&a, "2580"), hash_pin(&a, "2581"));
    }

    #[test]
    fn constant_time_eq_matches_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
