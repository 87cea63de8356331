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

    pub fn expose(&self) -> &str {
        self.0.expose()
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
    fn debug_hides_the_password() {
        let p = Password::parse("correct horse".into()).unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }
}
