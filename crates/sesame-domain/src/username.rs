//! Usernames are compared in one canonical form so that `Admin`, `admin` and
//! the fullwidth `ａｄｍｉｎ` are one account.

use std::fmt;
use unicode_normalization::UnicodeNormalization;

pub const MAX_USERNAME_CHARS: usize = 64;

/// A username in canonical form: NFKC, case-folded, trimmed, validated.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    #[error("user must not be empty")]
    Empty,
    #[error("user must be at most {MAX_USERNAME_CHARS} characters")]
    TooLong,
    #[error("user may contain only letters, digits and . _ - @ +")]
    InvalidCharacter,
}

impl Username {
    pub fn parse(raw: &str) -> Result<Self, UsernameError> {
        // NFKC folds compatibility forms (fullwidth, ligatures); lowercasing
        // after it, then NFKC again, keeps the result stable.
        let folded: String = raw.trim().nfkc().collect::<String>().to_lowercase();
        let canonical: String = folded.nfkc().collect();
        if canonical.is_empty() {
            return Err(UsernameError::Empty);
        }
        if canonical.chars().count() > MAX_USERNAME_CHARS {
            return Err(UsernameError::TooLong);
        }
        let allowed = |c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+');
        if !canonical.chars().all(allowed) {
            return Err(UsernameError::InvalidCharacter);
        }
        Ok(Self(canonical))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Username({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_width_variants_are_one_account() {
        let a = Username::parse("Admin").unwrap();
        let b = Username::parse("admin").unwrap();
        let c = Username::parse("ａｄｍｉｎ").unwrap();
        let d = Username::parse("  ADMIN ").unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(c, d);
        assert_eq!(a.as_str(), "admin");
    }

    #[test]
    fn keeps_email_like_names() {
        assert_eq!(
            Username::parse("Jane.Doe+x@Example.com").unwrap().as_str(),
            "jane.doe+x@example.com"
        );
        assert_eq!(
            Username::parse("SioKCronin").unwrap().as_str(),
            "siokcronin"
        );
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(Username::parse("   "), Err(UsernameError::Empty));
        assert_eq!(
            Username::parse(&"a".repeat(65)),
            Err(UsernameError::TooLong)
        );
        assert!(Username::parse(&"a".repeat(64)).is_ok());
        for bad in [
            "a b",
            "robert'); DROP TABLE users;--",
            "x\0y",
            "a/b",
            "<script>",
        ] {
            assert_eq!(
                Username::parse(bad),
                Err(UsernameError::InvalidCharacter),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn unicode_letters_are_allowed() {
        assert_eq!(Username::parse("Ünïcødé").unwrap().as_str(), "ünïcødé");
        assert_eq!(Username::parse("名前").unwrap().as_str(), "名前");
    }
}
