use std::fmt;

use super::Invalid;

/// The longest address SMTP can carry (RFC 5321: 254 octets in a path).
const MAX_LEN: usize = 254;

/// A syntactically valid email address, trimmed. Two addresses that differ only in
/// case, or in the spelling of an internationalized domain (`bücher.example` and its
/// A-label `xn--bcher-kva.example`), are the same account: [`Email::key`], the ASCII
/// local part lowercased `@` the domain's A-label (IDNA, UTS #46), is the lookup and
/// uniqueness key. Local parts must be ASCII.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    display: String,
    key: String,
}

impl Email {
    /// Parses `raw` as the value of the field `field` (named in the error).
    pub fn parse(raw: &str, field: &str) -> Result<Self, Invalid> {
        let trimmed = raw.trim();
        let invalid = || {
            Invalid(format!(
                "The '{field}' field must be a valid email address."
            ))
        };
        if trimmed.is_empty() || trimmed.len() > MAX_LEN {
            return Err(invalid());
        }
        let (local, domain) = trimmed.rsplit_once('@').ok_or_else(invalid)?;
        if !local.is_ascii() {
            return Err(Invalid(format!(
                "The '{field}' field must have an ASCII local part (before the @): \
                 internationalized local parts are not supported."
            )));
        }
        let plain_ascii = |s: &str| s.bytes().all(|b| b.is_ascii_graphic() && b != b'@');
        let visible = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| !c.is_whitespace() && !c.is_control() && c != '@')
        };
        if local.is_empty() || local.len() > 64 || !plain_ascii(local) || !visible(domain) {
            return Err(invalid());
        }
        if !is_dot_atom(local) {
            return Err(Invalid(format!(
                "The '{field}' field must be a plain email address: the part before the @ \
                 may hold letters, digits and {ATEXT_SPECIALS} with single dots between \
                 them (no quotes, commas, spaces or brackets)."
            )));
        }
        let a_label = idna::domain_to_ascii_cow(domain.as_bytes(), idna::AsciiDenyList::STD3)
            .map_err(|_| invalid())?;
        let key = format!("{}@{a_label}", local.to_ascii_lowercase());
        if key.len() > MAX_LEN
            || !email_address::EmailAddress::is_valid(&key)
            || !is_dotted_domain(&a_label)
        {
            return Err(invalid());
        }
        Ok(Email {
            display: trimmed.to_string(),
            key,
        })
    }

    /// The address as the person typed it (trimmed).
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The case-insensitive identity of the address.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// The characters besides letters and digits an unquoted local part may hold (RFC
/// 5322's `atext`).
const ATEXT_SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";

/// An unquoted local part (RFC 5322's `dot-atom`): `atext` runs joined by single dots.
/// Quoted local parts (`"a,b"@example.com`) are valid addresses, but mailers and mail
/// libraries (lettre's mailbox parser among them) refuse many, and such a mail would
/// be retried until it expired: they are refused here, at the door.
fn is_dot_atom(local: &str) -> bool {
    local.split('.').all(|atom| {
        !atom.is_empty()
            && atom
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ATEXT_SPECIALS.contains(c))
    })
}

/// A domain of at least two labels of letters, digits and inner hyphens.
fn is_dotted_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn trims_and_keys_case_insensitively() {
        let e = Email::parse("  Joe.Bloggs@Example.COM ", "email").unwrap();
        assert_eq!(e.as_str(), "Joe.Bloggs@Example.COM");
        assert_eq!(e.key(), "joe.bloggs@example.com");
    }

    #[test]
    fn refuses_malformed_addresses() {
        for bad in [
            "",
            "   ",
            "joe",
            "joe@",
            "@example.com",
            "joe@localhost",
            "joe@@example.com",
            "Joe <joe@example.com>",
            "jo e@example.com",
            "joe@exa mple.com",
            "joe@-example.com",
            "joe@example..com",
        ] {
            let err = Email::parse(bad, "email").unwrap_err();
            assert_eq!(
                err.0, "The 'email' field must be a valid email address.",
                "{bad:?}"
            );
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long, "email").is_err());
    }

    #[test]
    fn internationalized_domains_are_keyed_on_their_a_label() {
        let unicode = Email::parse("Ada@Bücher.example", "email").unwrap();
        let punycode = Email::parse("ada@xn--bcher-kva.example", "email").unwrap();
        assert_eq!(unicode.key(), "ada@xn--bcher-kva.example");
        assert_eq!(unicode.key(), punycode.key());
        assert_eq!(unicode.as_str(), "Ada@Bücher.example");
        // UTS #46 mapping: full-width and upper-case forms are the same domain.
        let mapped = Email::parse("ada@ＢÜCHER.example", "email").unwrap();
        assert_eq!(mapped.key(), unicode.key());
        for bad in [
            "ada@bü cher.example",
            "ada@xn--.example",
            "ada@b\u{0}cher.example",
            "ada@bücher",
        ] {
            let err = Email::parse(bad, "email").unwrap_err();
            assert_eq!(
                err.0, "The 'email' field must be a valid email address.",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn non_ascii_local_parts_are_refused_with_a_message_that_says_so() {
        let err = Email::parse("ädä@example.com", "email").unwrap_err();
        assert_eq!(
            err.0,
            "The 'email' field must have an ASCII local part (before the @): \
             internationalized local parts are not supported."
        );
    }

    #[test]
    fn quoted_and_unusual_local_parts_are_refused_with_a_message_that_says_so() {
        for bad in [
            "\"a,b\"@example.com",
            "\"joe\"@example.com",
            "a,b@example.com",
            "a(b)@example.com",
            "a<b>@example.com",
            "a[b]@example.com",
            "a:b@example.com",
            "a;b@example.com",
            "a\\b@example.com",
            ".joe@example.com",
            "joe.@example.com",
            "jo..e@example.com",
        ] {
            let err = Email::parse(bad, "new_email").unwrap_err();
            assert!(
                err.0
                    .starts_with("The 'new_email' field must be a plain email address"),
                "{bad:?}: {}",
                err.0
            );
        }
        for good in [
            "o'brien+tag@example.com",
            "a.b-c_d@example.com",
            "{x}|~@example.com",
        ] {
            assert!(Email::parse(good, "email").is_ok(), "{good:?}");
        }
    }

    proptest! {
        /// What is accepted, the mailer can address: lettre parses it as a mailbox.
        #[test]
        fn every_accepted_address_is_one_the_mailer_takes(
            local in "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~.\"(),:;<>@\\\\ \\[\\]-]{1,24}",
            domain in "(example\\.com|bücher\\.example|ＢÜCHER\\.example)",
        ) {
            let raw = format!("{local}@{domain}");
            if let Ok(e) = Email::parse(&raw, "email") {
                prop_assert!(e.as_str().parse::<lettre::message::Mailbox>().is_ok(), "{}", raw);
                prop_assert!(e.key().parse::<lettre::Address>().is_ok(), "{}", raw);
            }
        }

        #[test]
        fn never_panics_and_accepted_values_are_canonical(s in "\\PC{0,80}") {
            if let Ok(e) = Email::parse(&s, "email") {
                prop_assert_eq!(e.as_str(), s.trim());
                if e.as_str().is_ascii() {
                    prop_assert_eq!(e.key(), e.as_str().to_ascii_lowercase());
                }
                prop_assert!(e.key().is_ascii());
                prop_assert!(e.as_str().contains('@'));
                prop_assert!(Email::parse(e.as_str(), "email").is_ok());
            }
        }
    }
}
