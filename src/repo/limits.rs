//! What a peer may make the other side hold or wait for: the sizes of the largest bodies (which
//! route may send or receive which is `protocol::Route::request_limit` and `response_limit`, the
//! one table server and client share, so whatever the client stores it can read back, and
//! whatever it may send the server accepts), and the timeouts that cut a stalled or trickling
//! body.
//!
//! Invariant: each limit is at least the largest object a correct client makes (derived below
//! from the pack, chunker and sealing constants where there is a hard bound), so a limit never
//! refuses honest data; everything else is refused before it is allocated (413 on the server, a
//! one-line error naming what was too big on the client).

use std::time::Duration;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// A repository config (a few hundred bytes: format, id, key check, three verifiers).
pub const CONFIG: u64 = 64 * KIB;
/// A transaction's sealed intent record ("create NAME", "delete NAME..."), and any other small
/// request or answer: lock tokens, pack names, sizes, error texts.
pub const RECORD: u64 = MIB;
pub const SMALL: u64 = 64 * KIB;

/// The largest pack the client's pack builder makes: it stops adding blocks once the data part
/// reaches `TARGET_SIZE`, so the data part is under that plus one sealed block (at most the
/// chunker's maximum, stored raw); the sealed header lists one entry (at most 43 bytes) per sealed
/// block (at least `SEAL_OVERHEAD` bytes each), so it is at most about as long as the data again.
pub const PACK_BUILT: u64 = {
    let data = crate::pack::TARGET_SIZE + crate::crypto::max_sealed(crate::chunker::MAX as u64) as usize;
    let header = data / crate::crypto::SEAL_OVERHEAD * 43 + 16 + crate::crypto::SEAL_OVERHEAD;
    (data + header + crate::pack::TRAILER_LEN) as u64
};
/// Regular packs: the largest built pack with room to spare.
pub const PACK: u64 = 64 * MIB;
const _: () = assert!(PACK_BUILT < PACK && PACK <= CHECKPOINT_PACK);
/// A checkpoint's own pack (sequence numbers from 0x8000_0000) holds the unfinished metadata,
/// whose last node lists every block of the file being read: about 37 bytes per block, so a
/// multi-terabyte file in progress makes it larger than a regular pack.
pub const CHECKPOINT_PACK: u64 = 256 * MIB;
/// Index segments list every block a transaction stored since its last checkpoint (about 45
/// bytes a block), and commit records carry the manifest (every archive) and lists of packs:
/// both grow with the repository, so their limit is generous.
pub const INDEX: u64 = 256 * MIB;
pub const COMMIT: u64 = 256 * MIB;
/// A checkpoint record lists the transaction's packs and segments so far (about 45 bytes each).
pub const CHECKPOINT: u64 = 64 * MIB;
/// Name lists and the pending list (intent and checkpoint records of pending transactions).
pub const LIST: u64 = 256 * MIB;

/// The server: a connection that sends no complete request head for this long is closed (an idle
/// kept-alive connection too); so is a TLS handshake that takes longer.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// The server: a request body that sends nothing for this long (`serve --body-timeout`) is cut
/// with 408; so is one that, after this long, has averaged less than `BODY_FLOOR` bytes a second.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
pub const BODY_FLOOR: u64 = 16 * KIB;
/// The server: a reply the peer does not read for this long is abandoned (its connection closed).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether a body that has delivered `received` bytes in `elapsed` is trickling: slower than
/// `floor` bytes a second on average, once `grace` has passed.
pub fn trickling(received: u64, elapsed: Duration, grace: Duration, floor: u64) -> bool {
    elapsed > grace && (received as f64) < (elapsed - grace).as_secs_f64() * floor as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_packs_fit_the_pack_limit() {
        assert!(PACK_BUILT > (crate::pack::TARGET_SIZE + crate::chunker::MAX) as u64);
    }

    #[test]
    fn trickling_is_judged_after_the_grace_period() {
        let g = Duration::from_secs(2);
        assert!(!trickling(0, Duration::from_secs(1), g, 1000));
        assert!(trickling(0, Duration::from_secs(3), g, 1000));
        assert!(!trickling(1000, Duration::from_secs(3), g, 1000));
        assert!(trickling(999, Duration::from_secs(3), g, 1000));
    }
}
