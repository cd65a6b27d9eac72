//! Revocation generations shared by every process that opens one SQLite
//! database, so that the server's in-process session cache never serves a
//! session that `sesame user passwd` or `sesame user remove` (another
//! process) has revoked.
//!
//! The file `<database>-revocations` sits beside the database, as SQLite's
//! own `-wal` and `-shm` do, and is mapped into memory by each process: a
//! table of counters, one per slot of session token hashes. Every
//! revocation bumps the slot of each session it removed, after the database
//! has committed it. The cache tags each session with its slot's value read
//! *before* it read the database, and a hit counts only while the slot
//! still has that value. A check that starts after a revocation was
//! acknowledged therefore misses the cache and reads the database,
//! whichever process revoked. Reading a counter is one atomic load, so a
//! cached check stays a hash-map lookup; a logout makes one slot in
//! [`SLOTS`] miss, not the whole cache.

use memmap2::MmapMut;
use sesame_domain::TokenHash;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Slots of token hashes: a revocation makes about 1/SLOTS of the cached
/// sessions miss once. 32 KiB of counters.
pub const SLOTS: usize = 4096;

const BYTES: usize = SLOTS * std::mem::size_of::<u64>();

pub struct Revocations {
    map: MmapMut,
}

impl Revocations {
    /// The generations of the database file `database`, shared with every
    /// process that opens it.
    pub fn open(database: &Path) -> std::io::Result<Self> {
        let path = Self::path_for(database);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        // Growing to the same size from two processes at once is harmless;
        // the file never shrinks.
        if file.metadata()?.len() < BYTES as u64 {
            file.set_len(BYTES as u64)?;
        }
        // SAFETY: the mapping is only ever accessed through atomics (see
        // `slot`), so other processes writing it concurrently is no data
        // race; the file is never truncated while mapped.
        let map = unsafe { MmapMut::map_mut(&file)? };
        Ok(Self { map })
    }

    /// Generations of a database no other process can open (in memory).
    pub fn private() -> std::io::Result<Self> {
        Ok(Self {
            map: MmapMut::map_anon(BYTES)?,
        })
    }

    pub fn path_for(database: &Path) -> PathBuf {
        let mut name = database.as_os_str().to_owned();
        name.push("-revocations");
        PathBuf::from(name)
    }

    fn slot(&self, token: &TokenHash) -> &AtomicU64 {
        // Token hashes are SHA-256: any 8 of their bytes are uniform.
        let prefix = u64::from_le_bytes(token.0[..8].try_into().expect("8 bytes"));
        let index = (prefix % SLOTS as u64) as usize;
        let counters = self.map.as_ptr() as *const AtomicU64;
        // SAFETY: the mapping is page-aligned and BYTES long, so `index` <
        // SLOTS names an aligned u64 inside it, valid as long as `self`.
        unsafe { &*counters.add(index) }
    }

    /// The generation of `token`'s slot now.
    pub fn current(&self, token: &TokenHash) -> u64 {
        self.slot(token).load(Ordering::SeqCst)
    }

    /// Marks that the session of `token` was revoked: call after the
    /// revocation has committed, before acknowledging it.
    pub fn bump(&self, token: &TokenHash) {
        self.slot(token).fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bump_in_one_mapping_shows_in_another() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sesame.db");
        let (a, b) = (
            Revocations::open(&db).unwrap(),
            Revocations::open(&db).unwrap(),
        );
        assert!(Revocations::path_for(&db).exists());
        let token = TokenHash([7; 32]);
        let before = b.current(&token);
        a.bump(&token);
        assert_eq!(b.current(&token), before + 1);
        assert_eq!(b.current(&TokenHash([8; 32])), 0, "other slots unchanged");
        let reopened = Revocations::open(&db).unwrap();
        assert_eq!(reopened.current(&token), before + 1, "kept across opens");
    }
}
