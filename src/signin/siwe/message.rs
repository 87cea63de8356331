//! The EIP-4361 message grammar, strictly: the ABNF of the EIP, line by line, with
//! RFC 3986 URIs and authorities checked by `iri-string` and RFC 3339 date-times by
//! `time`. A text that does not match exactly (an extra space, a `\r`, a field out of
//! order, an address not in its EIP-55 form) is refused, because the wallet showed
//! the person exactly this text and signed exactly these bytes.
//!
//! ```text
//! [ scheme "://" ] domain " wants you to sign in with your Ethereum account:" LF
//! address LF
//! LF
//! [ statement LF ]
//! LF
//! "URI: " uri LF
//! "Version: " version LF
//! "Chain ID: " chain-id LF
//! "Nonce: " nonce LF
//! "Issued At: " issued-at
//! [ LF "Expiration Time: " expiration-time ]
//! [ LF "Not Before: " not-before ]
//! [ LF "Request ID: " request-id ]
//! [ LF "Resources:" *( LF "- " URI ) ]
//! ```

use iri_string::types::UriStr;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::crypto::eth::Address;

/// Longest message accepted, bytes: far more than any real sign-in message, and a
/// bound on the work one request can ask for.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

const PREAMBLE: &str = " wants you to sign in with your Ethereum account:";
const URI: &str = "URI: ";
const VERSION: &str = "Version: ";
const CHAIN_ID: &str = "Chain ID: ";
const NONCE: &str = "Nonce: ";
const ISSUED_AT: &str = "Issued At: ";
const EXPIRATION_TIME: &str = "Expiration Time: ";
const NOT_BEFORE: &str = "Not Before: ";
const REQUEST_ID: &str = "Request ID: ";
const RESOURCES: &str = "Resources:";
const RESOURCE: &str = "- ";

/// Where and why a text is not an EIP-4361 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {what}")]
pub struct GrammarError {
    /// 1-based; 0 for the message as a whole.
    pub line: usize,
    pub what: &'static str,
}

/// A date-time as written in the message, and the instant it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp {
    pub text: String,
    pub at: OffsetDateTime,
}

/// A message that matched the grammar. Every field holds the text as signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub scheme: Option<String>,
    /// An RFC 3986 authority: `[userinfo "@"] host [":" port]`.
    pub domain: String,
    pub address: Address,
    pub statement: Option<String>,
    pub uri: String,
    pub chain_id: u64,
    pub nonce: String,
    pub issued_at: Timestamp,
    pub expiration_time: Option<Timestamp>,
    pub not_before: Option<Timestamp>,
    pub request_id: Option<String>,
    pub resources: Vec<String>,
}

impl Message {
    pub fn parse(text: &str) -> Result<Message, GrammarError> {
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(GrammarError {
                line: 0,
                what: "the message is longer than 16 KiB",
            });
        }
        let mut lines = Lines::new(text);

        let (n, first) = lines.next("the preamble is missing")?;
        let origin = first.strip_suffix(PREAMBLE).ok_or(GrammarError {
            line: n,
            what: "the first line must end with \" wants you to sign in with your Ethereum account:\"",
        })?;
        let (scheme, domain) = match origin.split_once("://") {
            Some((scheme, domain)) => (Some(scheme), domain),
            None => (None, origin),
        };
        if let Some(scheme) = scheme
            && !is_scheme(scheme)
        {
            return Err(GrammarError {
                line: n,
                what: "the scheme is not an RFC 3986 scheme",
            });
        }
        if !is_authority(domain) {
            return Err(GrammarError {
                line: n,
                what: "the domain is not an RFC 3986 authority",
            });
        }

        let (n, address) = lines.next("the address is missing")?;
        let address = parse_address(address).ok_or(GrammarError {
            line: n,
            what: "the address must be 0x and 40 hex digits in their EIP-55 checksum form",
        })?;
        lines.empty()?;

        let (n, line) = lines.next("the URI line is missing")?;
        let statement = if line.is_empty() {
            None
        } else {
            if !line.bytes().all(is_statement_byte) {
                return Err(GrammarError {
                    line: n,
                    what: "the statement may hold only RFC 3986 reserved and unreserved characters and spaces",
                });
            }
            lines.empty()?;
            Some(line.to_string())
        };

        let (n, uri) = lines.tagged(URI, "the URI line must be \"URI: <uri>\"")?;
        if !is_uri(uri) {
            return Err(GrammarError {
                line: n,
                what: "the URI is not an RFC 3986 URI",
            });
        }
        let (n, version) = lines.tagged(VERSION, "the version line must be \"Version: 1\"")?;
        if version != "1" {
            return Err(GrammarError {
                line: n,
                what: "the version must be 1",
            });
        }
        let (n, chain_id) = lines.tagged(CHAIN_ID, "the chain line must be \"Chain ID: <id>\"")?;
        let chain_id = parse_chain_id(chain_id).ok_or(GrammarError {
            line: n,
            what: "the chain ID must be digits (an EIP-155 chain id below 2^64)",
        })?;
        let (n, nonce) = lines.tagged(NONCE, "the nonce line must be \"Nonce: <nonce>\"")?;
        if nonce.len() < 8 || !nonce.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(GrammarError {
                line: n,
                what: "the nonce must be at least 8 letters and digits",
            });
        }
        let (n, issued_at) = lines.tagged(
            ISSUED_AT,
            "the issued-at line must be \"Issued At: <date-time>\"",
        )?;
        let issued_at = timestamp(n, issued_at, "issued-at is not an RFC 3339 date-time")?;

        let expiration_time = lines
            .optional(EXPIRATION_TIME)
            .map(|(n, t)| timestamp(n, t, "expiration-time is not an RFC 3339 date-time"))
            .transpose()?;
        let not_before = lines
            .optional(NOT_BEFORE)
            .map(|(n, t)| timestamp(n, t, "not-before is not an RFC 3339 date-time"))
            .transpose()?;
        let request_id = match lines.optional(REQUEST_ID) {
            Some((n, id)) if !is_pchars(id) => {
                return Err(GrammarError {
                    line: n,
                    what: "the request ID may hold only RFC 3986 path characters",
                });
            }
            other => other.map(|(_, id)| id.to_string()),
        };
        let mut resources = Vec::new();
        if let Some((n, rest)) = lines.optional(RESOURCES) {
            if !rest.is_empty() {
                return Err(GrammarError {
                    line: n,
                    what: "nothing may follow \"Resources:\" on its line",
                });
            }
            while let Some((n, resource)) = lines.optional(RESOURCE) {
                if !is_uri(resource) {
                    return Err(GrammarError {
                        line: n,
                        what: "a resource is not an RFC 3986 URI",
                    });
                }
                resources.push(resource.to_string());
            }
        }
        if let Some((n, _)) = lines.peek() {
            return Err(GrammarError {
                line: n,
                what: "an unexpected line, or a field out of order",
            });
        }
        Ok(Message {
            scheme: scheme.map(str::to_string),
            domain: domain.to_string(),
            address,
            statement,
            uri: uri.to_string(),
            chain_id,
            nonce: nonce.to_string(),
            issued_at,
            expiration_time,
            not_before,
            request_id,
            resources,
        })
    }
}

/// The message's lines, split at LF only, numbered from 1.
struct Lines<'a> {
    inner: std::iter::Peekable<std::iter::Enumerate<std::str::Split<'a, char>>>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Lines {
            inner: text.split('\n').enumerate().peekable(),
        }
    }

    fn peek(&mut self) -> Option<(usize, &'a str)> {
        self.inner.peek().map(|&(i, line)| (i + 1, line))
    }

    fn next(&mut self, missing: &'static str) -> Result<(usize, &'a str), GrammarError> {
        match self.inner.next() {
            Some((i, line)) => Ok((i + 1, line)),
            None => Err(GrammarError {
                line: 0,
                what: missing,
            }),
        }
    }

    fn empty(&mut self) -> Result<(), GrammarError> {
        match self.next("the message ends too early")? {
            (_, "") => Ok(()),
            (n, _) => Err(GrammarError {
                line: n,
                what: "an empty line is expected here",
            }),
        }
    }

    /// The rest of the next line after `tag`; an error naming `expected` otherwise.
    fn tagged(
        &mut self,
        tag: &str,
        expected: &'static str,
    ) -> Result<(usize, &'a str), GrammarError> {
        let (n, line) = self.next(expected)?;
        line.strip_prefix(tag)
            .map(|rest| (n, rest))
            .ok_or(GrammarError {
                line: n,
                what: expected,
            })
    }

    /// The next line's rest after `tag`, consumed only if it has the tag.
    fn optional(&mut self, tag: &str) -> Option<(usize, &'a str)> {
        let (n, rest) = self
            .peek()
            .and_then(|(n, line)| line.strip_prefix(tag).map(|rest| (n, rest)))?;
        self.inner.next();
        Some((n, rest))
    }
}

fn timestamp(line: usize, text: &str, what: &'static str) -> Result<Timestamp, GrammarError> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map(|at| Timestamp {
            text: text.to_string(),
            at,
        })
        .map_err(|_| GrammarError { line, what })
}

fn parse_address(text: &str) -> Option<Address> {
    let address = Address::parse(text).ok()?;
    (address.to_eip55() == text).then_some(address)
}

fn parse_chain_id(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`
pub(crate) fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

/// An RFC 3986 authority with a host: what `x://<authority>` parses into, as a
/// whole, with nothing after it.
pub(crate) fn is_authority(s: &str) -> bool {
    if s.is_empty() {
        return false;
    }
    let uri = format!("x://{s}");
    UriStr::new(&uri).is_ok_and(|uri| {
        uri.authority_str() == Some(s)
            && uri.path_str().is_empty()
            && uri.query_str().is_none()
            && uri.fragment_str().is_none()
            && uri
                .authority_components()
                .is_some_and(|a| !a.host().is_empty())
    })
}

/// An RFC 3986 `URI`: a scheme, and an optional fragment.
fn is_uri(s: &str) -> bool {
    UriStr::new(s).is_ok()
}

/// `reserved / unreserved / " "`
fn is_statement_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b" -._~:/?#[]@!$&'()*+,;=".contains(&b)
}

/// `*pchar`: unreserved, percent-encodings, sub-delims, `:` and `@`.
fn is_pchars(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
            continue;
        }
        if !(b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b)) {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    const POSITIVE: &str = include_str!("../../../tests/vectors/siwe/parsing_positive.json");
    const NEGATIVE: &str = include_str!("../../../tests/vectors/siwe/parsing_negative.json");
    const NEGATIVE_OBJECTS: &str =
        include_str!("../../../tests/vectors/siwe/parsing_negative_objects.json");

    fn cases(json: &str) -> serde_json::Map<String, Value> {
        match serde_json::from_str(json).unwrap() {
            Value::Object(cases) => cases,
            _ => panic!("the vectors are an object of cases"),
        }
    }

    /// The message the reference library's `prepareMessage` writes for these fields.
    pub(crate) fn prepare(fields: &Value) -> String {
        let s = |key: &str| fields.get(key).and_then(Value::as_str);
        let mut out = String::new();
        if let Some(scheme) = s("scheme") {
            out.push_str(&format!("{scheme}://"));
        }
        out.push_str(&format!(
            "{}{PREAMBLE}\n{}\n\n",
            s("domain").unwrap_or(""),
            s("address").unwrap_or("")
        ));
        if let Some(statement) = s("statement") {
            out.push_str(&format!("{statement}\n"));
        }
        out.push('\n');
        let chain = match fields.get("chainId") {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        out.push_str(&format!(
            "{URI}{}\n{VERSION}{}\n{CHAIN_ID}{chain}\n{NONCE}{}\n{ISSUED_AT}{}",
            s("uri").unwrap_or(""),
            s("version").unwrap_or(""),
            s("nonce").unwrap_or(""),
            s("issuedAt").unwrap_or("")
        ));
        for (tag, key) in [
            (EXPIRATION_TIME, "expirationTime"),
            (NOT_BEFORE, "notBefore"),
            (REQUEST_ID, "requestId"),
        ] {
            if let Some(value) = s(key) {
                out.push_str(&format!("\n{tag}{value}"));
            }
        }
        if let Some(Value::Array(resources)) = fields.get("resources") {
            out.push_str(&format!("\n{RESOURCES}"));
            for r in resources {
                out.push_str(&format!("\n{RESOURCE}{}", r.as_str().unwrap()));
            }
        }
        out
    }

    #[test]
    fn every_positive_parsing_vector_parses_into_its_fields() {
        let cases = cases(POSITIVE);
        assert_eq!(cases.len(), 19);
        for (name, case) in cases {
            let text = case["message"].as_str().unwrap();
            let m = Message::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let f = &case["fields"];
            let s = |key: &str| f.get(key).and_then(Value::as_str).map(str::to_string);
            assert_eq!(m.scheme, s("scheme"), "{name}");
            assert_eq!(Some(m.domain.clone()), s("domain"), "{name}");
            assert_eq!(Some(m.address.to_eip55()), s("address"), "{name}");
            assert_eq!(m.statement, s("statement"), "{name}");
            assert_eq!(Some(m.uri.clone()), s("uri"), "{name}");
            assert_eq!(s("version").as_deref(), Some("1"), "{name}");
            assert_eq!(Some(m.chain_id), f["chainId"].as_u64(), "{name}");
            assert_eq!(Some(m.nonce.clone()), s("nonce"), "{name}");
            assert_eq!(Some(m.issued_at.text.clone()), s("issuedAt"), "{name}");
            let text_of = |t: &Option<Timestamp>| t.as_ref().map(|t| t.text.clone());
            assert_eq!(text_of(&m.expiration_time), s("expirationTime"), "{name}");
            assert_eq!(text_of(&m.not_before), s("notBefore"), "{name}");
            assert_eq!(m.request_id, s("requestId"), "{name}");
            let resources: Vec<String> = f
                .get("resources")
                .and_then(Value::as_array)
                .map(|r| r.iter().map(|r| r.as_str().unwrap().to_string()).collect())
                .unwrap_or_default();
            assert_eq!(m.resources, resources, "{name}");
            // What the reference library writes from the fields is the same text.
            assert_eq!(prepare(f), text, "{name}");
        }
    }

    #[test]
    fn every_negative_parsing_vector_is_refused() {
        let cases = cases(NEGATIVE);
        assert_eq!(cases.len(), 29);
        for (name, text) in cases {
            let text = text.as_str().unwrap();
            assert!(Message::parse(text).is_err(), "{name} parsed");
        }
    }

    #[test]
    fn every_negative_object_vector_makes_a_message_that_is_refused() {
        let cases = cases(NEGATIVE_OBJECTS);
        assert_eq!(cases.len(), 18);
        for (name, fields) in cases {
            let text = prepare(&fields);
            assert!(Message::parse(&text).is_err(), "{name} parsed: {text:?}");
        }
    }

    fn example() -> String {
        "https://example.com wants you to sign in with your Ethereum account:\n\
         0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\n\
         Sign in to Example\n\n\
         URI: https://example.com/login\nVersion: 1\nChain ID: 137\nNonce: 0123abcdEFGH\n\
         Issued At: 2026-01-01T00:00:00Z\nExpiration Time: 2026-01-01T00:05:00.5Z\n\
         Not Before: 2026-01-01T00:00:00Z\nRequest ID: a%20b:c@d\nResources:\n\
         - ipfs://bafy\n- https://example.com/terms"
            .to_string()
    }

    #[test]
    fn every_field_is_read() {
        let m = Message::parse(&example()).unwrap();
        assert_eq!(m.scheme.as_deref(), Some("https"));
        assert_eq!(m.domain, "example.com");
        assert_eq!(m.statement.as_deref(), Some("Sign in to Example"));
        assert_eq!(m.chain_id, 137);
        assert_eq!(m.nonce, "0123abcdEFGH");
        assert_eq!(
            m.expiration_time.unwrap().at,
            OffsetDateTime::from_unix_timestamp_nanos(1_767_225_900_500_000_000).unwrap()
        );
        assert_eq!(m.request_id.as_deref(), Some("a%20b:c@d"));
        assert_eq!(m.resources, ["ipfs://bafy", "https://example.com/terms"]);
    }

    #[test]
    fn near_misses_are_refused_with_the_line_they_are_on() {
        let good = example();
        let cases: &[(&str, &str, usize)] = &[
            ("\n", "\r\n", 1),
            ("Version: 1", "Version: 1 ", 7),
            ("Chain ID: 137", "Chain ID: 18446744073709551616", 8),
            ("Chain ID: 137", "Chain ID: -1", 8),
            ("Chain ID: 137", "Chain ID: ", 8),
            ("Nonce: 0123abcdEFGH", "Nonce: 0123abcd-EFGH", 9),
            ("Sign in to Example", "Sign in to \"Example\"", 4),
            ("Sign in to Example", "Sign in to Ex\u{e4}mple", 4),
            ("Request ID: a%20b:c@d", "Request ID: a%2", 13),
            ("Request ID: a%20b:c@d", "Request ID: a/b", 13),
            ("Resources:", "Resources: ", 14),
            ("- ipfs://bafy", "-ipfs://bafy", 15),
            ("https://example.com wants", "https://example.com/ wants", 1),
            ("https://example.com wants", "1https://example.com wants", 1),
            ("https://example.com wants", "https://exa mple.com wants", 1),
            ("https://example.com wants", "https://:80 wants", 1),
            (
                "Issued At: 2026-01-01T00:00:00Z",
                "Issued At: 2026-01-01",
                10,
            ),
            (
                "Issued At: 2026-01-01T00:00:00Z",
                "Issued At: 2026-02-30T00:00:00Z",
                10,
            ),
        ];
        for (from, to, line) in cases {
            let bad = good.replacen(from, to, 1);
            assert_ne!(bad, good, "{from:?} is in the example");
            let e = Message::parse(&bad).expect_err(to);
            assert_eq!(e.line, *line, "{to:?}: {e}");
        }
        // An empty statement line would make two messages of one text.
        let empty_statement = good.replacen("Sign in to Example", "", 1);
        assert!(Message::parse(&empty_statement).is_err());
        // A trailing newline is one line more than the grammar has.
        assert!(Message::parse(&format!("{good}\n")).is_err());
        // No statement: the address, two empty lines, the URI.
        let no_statement = good.replacen("Sign in to Example\n\n", "\n", 1);
        assert_eq!(Message::parse(&no_statement).unwrap().statement, None);
        let long = format!(
            "{good}\n- https://example.com/{}",
            "a".repeat(MAX_MESSAGE_BYTES)
        );
        assert_eq!(Message::parse(&long).unwrap_err().line, 0);
    }

    proptest! {
        #[test]
        fn the_parser_never_panics(s in "\\PC{0,400}") {
            let _ = Message::parse(&s);
        }

        #[test]
        fn a_changed_byte_either_fails_or_parses_to_another_message(
            at in 0usize..400, byte in proptest::num::u8::ANY,
        ) {
            let good = example();
            let mut bytes = good.clone().into_bytes();
            let at = at % bytes.len();
            prop_assume!(bytes[at] != byte);
            bytes[at] = byte;
            if let Ok(text) = String::from_utf8(bytes)
                && let Ok(m) = Message::parse(&text)
            {
                prop_assert_ne!(m, Message::parse(&good).unwrap());
            }
        }
    }
}
