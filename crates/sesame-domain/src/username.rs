//! Usernames are compared in one canonical form so that `Admin`, `admin` and
//! the fullwidth `ａｄｍｉｎ` are one account. New names must also not mix
//! scripts, so that `аlice` (Cyrillic а) cannot pose as `alice`.

use std::fmt;
use unicode_normalization::UnicodeNormalization;
use unicode_security::{RestrictionLevel, RestrictionLevelDetection};

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
    #[error(
        "user must be written in one script (e.g. not Latin mixed with Cyrillic or Greek), \
         with letters recommended for identifiers (Unicode TS #39)"
    )]
    MixedScripts,
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

    /// A name for a new account: as [`Username::parse`], and also at the
    /// "highly restrictive" level of Unicode TS #39 (one script, or Latin
    /// with Han and Japanese or Korean), so no account can look like another
    /// by mixing look-alike letters. Names are checked only when created:
    /// logging in with a mixed-script name is just an unknown user.
    pub fn parse_new(raw: &str) -> Result<Self, UsernameError> {
        let name = Self::parse(raw)?;
        // Separators and digits belong to every script; judge the letters.
        let letters: String = name.0.chars().filter(|c| c.is_alphabetic()).collect();
        if letters.as_str().detect_restriction_level() > RestrictionLevel::HighlyRestrictive {
            return Err(UsernameError::MixedScripts);
        }
        Ok(name)
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
    fn new_names_may_not_mix_look_alike_scripts() {
        // Cyrillic а (U+0430) in front of Latin "lice".
        let spoof = "\u{0430}lice";
        assert!(
            Username::parse(spoof).is_ok(),
            "a login is just an unknown user"
        );
        assert_eq!(Username::parse_new(spoof), Err(UsernameError::MixedScripts));
        // Greek ο (U+03BF) inside Latin.
        assert_eq!(
            Username::parse_new("b\u{03BF}b"),
            Err(UsernameError::MixedScripts)
        );
        for fine in [
            "alice",
            "jane.doe+x@example.com",
            "иван.петров",
            "γιάννης_7",
            "山田太郎",
            "やまだ-taro",
            "김민준",
            "josé-ñúñez",
        ] {
            assert!(Username::parse_new(fine).is_ok(), "{fine}");
        }
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
