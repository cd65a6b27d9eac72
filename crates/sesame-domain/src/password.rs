//! Passwords after NIST SP 800-63B: length limits, Unicode normalization and a
//! blocklist, no composition rules. A [`Password`] never prints itself.

use crate::username::Username;
use std::fmt;
use unicode_normalization::UnicodeNormalization;
use zxcvbn::matching::patterns::MatchPattern;
use zxcvbn::matching::Match;

/// A password, NFKC-normalized. Its `Debug` is redacted and it has no
/// `Display` or `Serialize`, so it cannot end up in a log by accident.
#[derive(Clone)]
pub struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be at most {0} bytes")]
    TooLong(usize),
    #[error("password must be at least {0} characters")]
    TooShort(usize),
    #[error("password is too common or too easy to guess; choose another")]
    Blocklisted,
    #[error("password must not contain the user name")]
    ContainsUsername,
}

impl Password {
    /// Normalizes a password as received. Only the byte limit is enforced here
    /// (it bounds hashing work); the other rules apply when a password is set.
    pub fn parse(raw: &str, policy: &PasswordPolicy) -> Result<Self, PasswordError> {
        if raw.len() > policy.max_bytes {
            return Err(PasswordError::TooLong(policy.max_bytes));
        }
        let normalized: String = raw.nfkc().collect();
        if normalized.len() > policy.max_bytes {
            return Err(PasswordError::TooLong(policy.max_bytes));
        }
        Ok(Self(normalized))
    }

    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }

    fn chars(&self) -> usize {
        self.0.chars().count()
    }
}

/// The rules a new password must satisfy.
#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    pub min_chars: usize,
    pub max_bytes: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: 8,
            max_bytes: 1024,
        }
    }
}

/// Passwords whose whole text zxcvbn finds fewer guesses for than this are
/// refused: common passwords, repeats, sequences, keyboard walks.
const MIN_GUESSES_LOG10: f64 = 4.0;
/// Only the first characters are analysed: matching is superlinear, and a
/// long prefix that is not weak makes the whole password not weak.
const ANALYSED_CHARS: usize = 64;

impl PasswordPolicy {
    /// Checks a password that is about to be set for `user`.
    pub fn check_new(&self, password: &Password, user: &Username) -> Result<(), PasswordError> {
        if password.chars() < self.min_chars {
            return Err(PasswordError::TooShort(self.min_chars));
        }
        let lower = password.0.to_lowercase();
        if user.as_str().chars().count() >= 4 && lower.contains(user.as_str()) {
            return Err(PasswordError::ContainsUsername);
        }
        let analysed: String = password.0.chars().take(ANALYSED_CHARS).collect();
        let entropy = zxcvbn::zxcvbn(&analysed, &[user.as_str()]);
        if entropy.guesses_log10() < MIN_GUESSES_LOG10 || is_common_password(entropy.sequence()) {
            return Err(PasswordError::Blocklisted);
        }
        Ok(())
    }
}

/// True when the password is one entry of the common-password list shipped in
/// zxcvbn (30k most used), possibly capitalized, reversed or l33t-spelled, or
/// such an entry plus a few digits or symbols.
fn is_common_password(sequence: &[Match]) -> bool {
    let from_password_list = |m: &Match| {
        // zxcvbn does not export its dictionary enum; its default variant is
        // the common-password list.
        matches!(&m.pattern, MatchPattern::Dictionary(d)
            if d.dictionary_name == Default::default())
    };
    match sequence {
        [only] => from_password_list(only),
        [first, rest @ ..] => {
            let tail: usize = rest.iter().map(|m| m.token.chars().count()).sum();
            from_password_list(first) && tail <= 3
        }
        [] => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pw: &str) -> Result<(), PasswordError> {
        let policy = PasswordPolicy::default();
        let user = Username::parse("siokcronin").unwrap();
        policy.check_new(&Password::parse(pw, &policy)?, &user)
    }

    #[test]
    fn accepts_reasonable_passwords() {
        for pw in [
            "IHeartData",
            "correct horse battery staple",
            "tr0ub4dor&3x",
            "ünïcødé-pässwörd-42",
        ] {
            assert_eq!(check(pw), Ok(()), "{pw}");
        }
    }

    #[test]
    fn length_limits() {
        assert_eq!(check("short"), Err(PasswordError::TooShort(8)));
        assert!(
            check(&"x7#kQ".repeat(13)).is_ok(),
            "64 characters are allowed"
        );
        assert_eq!(check(&"a".repeat(1025)), Err(PasswordError::TooLong(1024)));
    }

    #[test]
    fn blocklist_and_patterns() {
        for pw in [
            "password",
            "Password1",
            "qwertyuiop",
            "12345678",
            "aaaaaaaa",
            "iloveyou!",
            "P@ssw0rd",
            "letmein123",
        ] {
            assert_eq!(check(pw), Err(PasswordError::Blocklisted), "{pw}");
        }
    }

    #[test]
    fn username_inside_password_is_refused() {
        assert_eq!(
            check("SioKCronin2024"),
            Err(PasswordError::ContainsUsername)
        );
    }

    #[test]
    fn normalization_makes_equivalent_forms_equal() {
        let policy = PasswordPolicy::default();
        let composed = Password::parse("caf\u{e9}-secret", &policy).unwrap();
        let decomposed = Password::parse("cafe\u{301}-secret", &policy).unwrap();
        assert_eq!(composed.expose(), decomposed.expose());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let pw = Password::parse("hunter2-secret", &PasswordPolicy::default()).unwrap();
        assert!(!format!("{pw:?}").contains("hunter2"));
    }
}
