//! Random identifiers: request ids for response headers and secret keys.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes from the OS random source.
pub fn random_bytes<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut buf = [0u8; N];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}

/// A cheap generator of request ids (UUID-shaped, version 4 bits set), seeded once from the
/// OS. Request ids need to be unique, not secret.
pub struct RequestIds {
    state: AtomicU64,
}

impl RequestIds {
    pub fn new() -> RequestIds {
        let seed = random_bytes::<8>()
            .map(u64::from_le_bytes)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        RequestIds {
            state: AtomicU64::new(seed),
        }
    }

    fn next_u64(&self) -> u64 {
        // splitmix64
        let mut z = self
            .state
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn next(&self) -> String {
        let hi = self.next_u64();
        let lo = self.next_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xffff,
            hi & 0x0fff,
            ((lo >> 48) & 0x3fff) | 0x8000,
            lo & 0xffff_ffff_ffff
        )
    }
}

impl Default for RequestIds {
    fn default() -> RequestIds {
        RequestIds::new()
    }
}
