//! The row a login lookup returns for a name that does not exist.

/// Login lookups always return one row: the user's, or this decoy (id 0)
/// when there is none. A miss then reads, sorts and decodes what a hit
/// does, so the database stage does not tell an attacker which names
/// exist (tests/timing.rs). Shaped like a production Argon2id hash.
pub(crate) const DECOY_PASSWORD_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$ZGVjb3ktc2FsdC0xMjM0NQ$ZGVjb3ktaGFzaC1kZWNveS1oYXNoLWRlY295LWhhc2gtMTI";
