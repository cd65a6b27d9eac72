//! SQL that SQLite and MySQL share word for word (the schemas are the same
//! shape; what differs per engine stays in its adapter).

use sesame_domain::StoreError;

pub(crate) const INSERT_SESSION: &str =
    "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)";

/// A live session and its user's name, by token hash (bind the hash, then
/// now in ms).
pub(crate) const FIND_SESSION: &str =
    "SELECT s.user_id, u.username, s.created_at, s.expires_at FROM sessions s \
     JOIN users u ON u.id = s.user_id WHERE s.token_hash = ? AND s.expires_at > ?";

/// A new password hash (bind the hash, changed-at ms, the user's id, then
/// the expected current hash twice, NULL for none): with an expected hash,
/// only if it is still the stored one.
pub(crate) const SET_PASSWORD_HASH: &str =
    "UPDATE users SET password_hash = ?, password_changed_at = ? \
     WHERE id = ? AND (? IS NULL OR password_hash = ?)";

/// A write that had to change one row: `NotFound` when it changed none.
pub(crate) fn changed_a_row(rows_affected: u64) -> Result<(), StoreError> {
    if rows_affected == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
