//! Argon2id password hashing: PHC strings, verification, and the decision to
//! rehash a stored hash whose parameters are older than the current ones.
//!
//! Each hashing thread keeps its Argon2 working memory (m_cost KiB) between
//! hashes. The library's one-shot API allocates it zeroed every time, which
//! costs a fresh 19 MiB of page faults or a 19 MiB memset per login; Argon2
//! writes every block before reading it, so reusing the memory is safe and
//! that time goes to hashing instead.

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::RngCore;
use std::cell::{Cell, RefCell};
use std::fmt;

/// Argon2id cost parameters. The default is the OWASP minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory in KiB.
    pub m_cost: u32,
    /// Passes over memory.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        Self {
            m_cost: 19_456,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

impl fmt::Display for HashParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={},t={},p={}", self.m_cost, self.t_cost, self.p_cost)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("invalid Argon2 parameters: {0}")]
    Params(String),
    #[error("hashing failed: {0}")]
    Hash(String),
}

/// What verifying a password against a stored hash found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    pub matches: bool,
    /// The stored hash uses other parameters (or algorithm) than the current
    /// ones and should be replaced after a successful login.
    pub needs_rehash: bool,
}

/// Hashes and verifies with one set of current parameters.
#[derive(Clone)]
pub struct PasswordHasher {
    params: HashParams,
    argon2: Argon2<'static>,
    argon2_params: Params,
}

/// Salt length in bytes (the PHC recommendation).
const SALT_BYTES: usize = 16;
/// Hash output length in bytes.
const OUTPUT_BYTES: usize = 32;

thread_local! {
    /// This thread's Argon2 working memory, grown to the largest m_cost seen.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
    /// Whether this thread keeps that memory between hashes. Hash workers
    /// do (no zeroed 19 MiB allocation per hash); any other thread hashing
    /// once (start-up, a test) gives it back, or it would hold m_cost for
    /// the life of the process.
    static KEEP_MEMORY: Cell<bool> = const { Cell::new(false) };
}

/// Makes this thread keep its Argon2 working memory between hashes: for
/// threads that do nothing but hash.
pub fn keep_memory_on_this_thread() {
    KEEP_MEMORY.set(true);
}

/// Runs Argon2 in this thread's reusable memory, or in memory of its own
/// on a thread that does not keep it.
fn compute(
    argon2: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    if !KEEP_MEMORY.get() {
        let mut memory = vec![Block::new(); params.block_count()];
        return argon2.hash_password_into_with_memory(password, salt, out, &mut memory);
    }
    MEMORY.with_borrow_mut(|memory| {
        let blocks = params.block_count();
        if memory.len() < blocks {
            memory.resize(blocks, Block::new());
        }
        argon2.hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
    })
}

impl PasswordHasher {
    pub fn new(params: HashParams) -> Result<Self, HashError> {
        let p = Params::new(
            params.m_cost,
            params.t_cost,
            params.p_cost,
            Some(OUTPUT_BYTES),
        )
        .map_err(|e| HashError::Params(e.to_string()))?;
        Ok(Self {
            params,
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, p.clone()),
            argon2_params: p,
        })
    }

    pub fn params(&self) -> HashParams {
        self.params
    }

    /// Hashes with a fresh random salt into a PHC string.
    pub fn hash(&self, password: &[u8]) -> Result<String, HashError> {
        let mut salt = [0u8; SALT_BYTES];
        rand::rng().fill_bytes(&mut salt);
        let mut out = [0u8; OUTPUT_BYTES];
        compute(&self.argon2, &self.argon2_params, password, &salt, &mut out)
            .map_err(|e| HashError::Hash(e.to_string()))?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&self.argon2_params)
                .map_err(|e| HashError::Hash(e.to_string()))?,
            salt: Some(Salt::new(&salt).map_err(|e| HashError::Hash(e.to_string()))?),
            hash: Some(Output::new(&out).map_err(|e| HashError::Hash(e.to_string()))?),
        };
        Ok(phc.to_string())
    }

    /// Verifies against a stored PHC string, using the parameters recorded in
    /// it. A malformed stored hash never matches.
    pub fn verify(&self, password: &[u8], phc: &str) -> Verification {
        let no_match = Verification {
            matches: false,
            needs_rehash: false,
        };
        let Some((argon2, params, parsed)) = parse_stored(phc) else {
            tracing::warn!("stored password hash is not a valid Argon2 PHC string");
            return no_match;
        };
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return no_match;
        };
        let mut out = vec![0u8; expected.len()];
        if compute(&argon2, &params, password, salt.as_ref(), &mut out).is_err() {
            return no_match;
        }
        // `Output` compares in constant time.
        let matches = Output::new(&out).is_ok_and(|computed| computed == *expected);
        Verification {
            matches,
            needs_rehash: matches && !self.is_current(&parsed, &params),
        }
    }

    fn is_current(&self, parsed: &PasswordHash, params: &Params) -> bool {
        parsed.algorithm.as_str() == "argon2id"
            && parsed.version == Some(u32::from(Version::V0x13))
            && params.m_cost() == self.params.m_cost
            && params.t_cost() == self.params.t_cost
            && params.p_cost() == self.params.p_cost
    }
}

/// The Argon2 instance, parameters and fields a stored PHC string describes.
fn parse_stored(phc: &str) -> Option<(Argon2<'static>, Params, PasswordHash)> {
    let parsed = PasswordHash::new(phc).ok()?;
    let algorithm = Algorithm::new(parsed.algorithm.as_str()).ok()?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).ok()?;
    Some((
        Argon2::new(algorithm, version, params.clone()),
        params,
        parsed,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: HashParams = HashParams {
        m_cost: 64,
        t_cost: 1,
        p_cost: 1,
    };

    #[test]
    fn hash_then_verify() {
        let h = PasswordHasher::new(CHEAP).unwrap();
        let phc = h.hash(b"IHeartData").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert_eq!(
            h.verify(b"IHeartData", &phc),
            Verification {
                matches: true,
                needs_rehash: false
            }
        );
        assert!(!h.verify(b"iheartdata", &phc).matches);
    }

    #[test]
    fn salts_differ() {
        let h = PasswordHasher::new(CHEAP).unwrap();
        assert_ne!(h.hash(b"same").unwrap(), h.hash(b"same").unwrap());
    }

    #[test]
    fn older_parameters_ask_for_a_rehash() {
        let old = PasswordHasher::new(CHEAP).unwrap();
        let phc = old.hash(b"pw-123456").unwrap();
        let current = PasswordHasher::new(HashParams {
            m_cost: 128,
            ..CHEAP
        })
        .unwrap();
        let v = current.verify(b"pw-123456", &phc);
        assert!(v.matches && v.needs_rehash);
        assert!(
            !current.verify(b"wrong", &phc).needs_rehash,
            "only a match triggers a rehash"
        );
    }

    #[test]
    fn garbage_never_matches() {
        let h = PasswordHasher::new(CHEAP).unwrap();
        assert!(!h.verify(b"x", "not a hash").matches);
        assert!(!h.verify(b"x", "").matches);
    }

    #[test]
    fn interoperates_with_the_argon2_crate() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let ours = PasswordHasher::new(CHEAP).unwrap();
        let library = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(CHEAP.m_cost, CHEAP.t_cost, CHEAP.p_cost, None).unwrap(),
        );
        let theirs = library.hash_password(b"shared-secret").unwrap().to_string();
        assert!(ours.verify(b"shared-secret", &theirs).matches);
        assert!(!ours.verify(b"other-secret", &theirs).matches);
        let mine = ours.hash(b"shared-secret").unwrap();
        assert!(library
            .verify_password(b"shared-secret", &PasswordHash::new(&mine).unwrap())
            .is_ok());
        // argon2i / argon2d hashes from elsewhere still verify, and ask for an upgrade.
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            Params::new(64, 1, 1, None).unwrap(),
        );
        let legacy = argon2i.hash_password(b"legacy-pw").unwrap().to_string();
        let v = ours.verify(b"legacy-pw", &legacy);
        assert!(v.matches && v.needs_rehash);
    }

    #[test]
    fn rejects_impossible_parameters() {
        assert!(PasswordHasher::new(HashParams {
            m_cost: 1,
            t_cost: 0,
            p_cost: 0
        })
        .is_err());
    }
}
