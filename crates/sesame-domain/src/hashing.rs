//! Argon2id password hashing: PHC strings, verification, and the decision to
//! rehash a stored hash whose parameters are older than the current ones.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
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
}

impl PasswordHasher {
    pub fn new(params: HashParams) -> Result<Self, HashError> {
        let p = Params::new(params.m_cost, params.t_cost, params.p_cost, None)
            .map_err(|e| HashError::Params(e.to_string()))?;
        Ok(Self {
            params,
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, p),
        })
    }

    pub fn params(&self) -> HashParams {
        self.params
    }

    /// Hashes with a fresh random salt into a PHC string.
    pub fn hash(&self, password: &[u8]) -> Result<String, HashError> {
        self.argon2
            .hash_password(password)
            .map(|h| h.to_string())
            .map_err(|e| HashError::Hash(e.to_string()))
    }

    /// Verifies against a stored PHC string, using the parameters recorded in
    /// it. A malformed stored hash never matches.
    pub fn verify(&self, password: &[u8], phc: &str) -> Verification {
        let Ok(parsed) = PasswordHash::new(phc) else {
            tracing::warn!("stored password hash is not a valid PHC string");
            return Verification {
                matches: false,
                needs_rehash: false,
            };
        };
        let matches = self.argon2.verify_password(password, &parsed).is_ok();
        Verification {
            matches,
            needs_rehash: matches && !self.is_current(&parsed),
        }
    }

    fn is_current(&self, parsed: &PasswordHash) -> bool {
        let same_params = Params::try_from(parsed).is_ok_and(|p| {
            p.m_cost() == self.params.m_cost
                && p.t_cost() == self.params.t_cost
                && p.p_cost() == self.params.p_cost
        });
        parsed.algorithm.as_str() == "argon2id"
            && parsed.version == Some(u32::from(Version::V0x13))
            && same_params
    }
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
    fn rejects_impossible_parameters() {
        assert!(PasswordHasher::new(HashParams {
            m_cost: 1,
            t_cost: 0,
            p_cost: 0
        })
        .is_err());
    }
}
