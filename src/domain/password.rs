use std::borrow::Cow;

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};

use super::{Invalid, Secret};

pub const MIN_CHARS: usize = 8;
pub const MAX_BYTES: usize = 1024;

/// A password that meets the length rules; it cannot be printed.
#[derive(Debug, Clone)]
pub struct Password(Secret<String>);

impl Password {
    /// At least 8 characters (Unicode scalar values) and at most 1,024 bytes, so the
    /// work a hash does per request stays bounded.
    pub fn parse(raw: String) -> Result<Self, Invalid> {
        if raw.len() > MAX_BYTES {
            return Err(Invalid(format!(
                "The 'password' field must be at most {MAX_BYTES} bytes long."
            )));
        }
        if raw.chars().count() < MIN_CHARS {
            return Err(Invalid(format!(
                "The 'password' field must be at least {MIN_CHARS} characters long."
            )));
        }
        Ok(Password(Secret::new(raw)))
    }

    /// The password as it was typed.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The password in Unicode Normalization Form KC, the form that is hashed and
    /// compared (NIST SP 800-63B §5.1.1.2): the same password typed on two keyboards,
    /// or pasted from a page that composed its accents differently, is one password.
    /// Most passwords are already in it and are borrowed as they are.
    pub fn normalized(&self) -> Cow<'_, str> {
        let typed = self.0.expose();
        match is_nfkc_quick(typed.chars()) {
            IsNormalized::Yes => Cow::Borrowed(typed),
            _ => Cow::Owned(typed.nfkc().collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_rules() {
        assert!(Password::parse("1234567".into()).is_err());
        assert!(Password::parse("12345678".into()).is_ok());
        // Eight characters, more bytes: counted in characters.
        assert!(Password::parse("ééééééé".into()).is_err());
        assert!(Password::parse("éééééééé".into()).is_ok());
        assert!(Password::parse("x".repeat(1024)).is_ok());
        let err = Password::parse("x".repeat(1025)).unwrap_err();
        assert_eq!(
            err.0,
            "The 'password' field must be at most 1024 bytes long."
        );
    }

    #[test]
    fn passwords_compare_in_nfkc() {
        let normalized = |s: &str| Password::parse(s.into()).unwrap().normalized().into_owned();
        // é precomposed, and e + combining acute: one password.
        assert_eq!(
            normalized("caf\u{e9} cr\u{e8}me"),
            normalized("cafe\u{301} cre\u{300}me")
        );
        assert_eq!(
            normalized("cafe\u{301} cre\u{300}me"),
            "caf\u{e9} cr\u{e8}me"
        );
        // Compatibility forms: full-width letters and the ﬁ ligature.
        assert_eq!(
            normalized("\u{ff50}\u{ff41}\u{ff53}\u{ff53}word!"),
            "password!"
        );
        assert_eq!(normalized("\u{fb01}nd me now"), "find me now");
        // ASCII is its own form, and borrowed.
        let ascii = Password::parse("correct horse".into()).unwrap();
        assert!(matches!(ascii.normalized(), Cow::Borrowed("correct horse")));
        // Case and spaces are not folded: they are part of the password.
        assert_ne!(normalized("Correct Horse"), normalized("correct horse"));
    }

    #[test]
    fn debug_hides_the_password() {
        let p = Password::parse("correct horse".into()).unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }
}
