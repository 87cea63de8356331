//! A JSON body extractor whose every rejection is a JSON 400 in the seed's shape,
//! never the framework's plain-text rejection or a 413/415.
//!
//! Every JSON a client sends (bodies, multipart parts, `?meta=`) goes through
//! [`parse`], which bounds the work before anything is built from it: a first pass
//! that keeps nothing refuses more than [`MAX_DEPTH`] levels of nesting, more than
//! [`MAX_VALUES`] values, and NUL characters (PostgreSQL's text cannot hold them, and
//! no field has a use for them); then the body becomes typed structures.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};

use super::AppState;
use super::error::ApiError;

pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, Self::Rejection> {
        if !is_json(&req) {
            return Err(ApiError::Unparsable(
                "The request body must be JSON, sent with Content-Type: application/json.".into(),
            ));
        }
        let body = read_body(req, app.settings.http.body_limit_bytes).await?;
        parse(&body).map(JsonBody)
    }
}

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    TooLarge,
    Unreadable,
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        ApiError::Unparsable(match e {
            BodyError::TooLarge => "The request body is too large.".into(),
            BodyError::Unreadable => "The request body could not be read.".into(),
        })
    }
}

/// The raw body, at most `limit` bytes. A body whose declared length is over the
/// limit is refused before a byte of it is read.
pub async fn read_body(req: Request, limit: usize) -> Result<Bytes, BodyError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|e| {
            let over_limit = e
                .into_inner()
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            if over_limit {
                BodyError::TooLarge
            } else {
                BodyError::Unreadable
            }
        })
}

/// Parses a JSON body, explaining what is wrong with it.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde would read a struct from an array too; every body here is an object.
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(_) if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() => {
            return Err(ApiError::Unparsable(
                "The request body must be a JSON object.".into(),
            ));
        }
        _ => {
            return Err(ApiError::Unparsable(
                "The request body is not valid JSON.".into(),
            ));
        }
    }
    parse_value(bytes)
}

/// Parses client JSON of any type (an array, a string…), bounded as [`parse`] is.
pub fn parse_value<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    check_shape(bytes)?;
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::Unparsable(match e.classify() {
            serde_json::error::Category::Data => {
                format!("The request body has an invalid value: {e}.")
            }
            _ => "The request body is not valid JSON.".into(),
        })
    })
}

/// How deep a client's JSON may nest: far more than any body here needs.
pub const MAX_DEPTH: usize = 32;
/// How many values (scalars, arrays and objects; keys not counted) a client's JSON
/// may hold. A SelfKey sign-up with every attribute a site may ask for holds a few
/// hundred; 10,000 built as values costs about a megabyte.
pub const MAX_VALUES: usize = 10_000;

/// The first pass of [`parse`]: walks the JSON keeping nothing, and refuses it when
/// it nests deeper than [`MAX_DEPTH`], holds more than [`MAX_VALUES`] values, or has
/// a NUL character in a string or key. Syntax errors are left to the second pass.
pub fn check_shape(bytes: &[u8]) -> Result<(), ApiError> {
    let mut walk = Shape::default();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    // A syntax error is left to the typed pass, which finds it again and says it.
    let _ = (&mut de).deserialize_any(&mut walk);
    match walk.refused {
        Some(why) => Err(ApiError::Unparsable(why.message())),
        None => Ok(()),
    }
}

#[derive(Default)]
struct Shape {
    values: usize,
    depth: usize,
    refused: Option<Refusal>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    TooMany,
    TooDeep,
    Nul,
}

impl Refusal {
    fn message(self) -> String {
        match self {
            Refusal::TooMany => format!("The request body holds more than {MAX_VALUES} values."),
            Refusal::TooDeep => format!("The request body nests deeper than {MAX_DEPTH} levels."),
            Refusal::Nul => "The request body must not contain NUL characters (\\u0000).".into(),
        }
    }
}

impl Shape {
    fn refuse<E: de::Error>(&mut self, why: Refusal) -> Result<(), E> {
        self.refused = Some(why);
        Err(E::custom(why.message()))
    }

    fn count<E: de::Error>(&mut self) -> Result<(), E> {
        self.values += 1;
        if self.values > MAX_VALUES {
            return self.refuse(Refusal::TooMany);
        }
        Ok(())
    }

    fn text<E: de::Error>(&mut self, s: &str) -> Result<(), E> {
        if s.contains('\0') {
            return self.refuse(Refusal::Nul);
        }
        Ok(())
    }

    fn enter<E: de::Error>(&mut self) -> Result<(), E> {
        self.count()?;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.refuse(Refusal::TooDeep);
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for &mut Shape {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.count()
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.count()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.count()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.count()
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.count()
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        self.count()?;
        self.text(s)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.enter()?;
        while seq.next_element_seed(&mut *self)?.is_some() {}
        self.depth -= 1;
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.enter()?;
        while let Some(()) = map.next_key_seed(Key(&mut *self))? {
            map.next_value_seed(&mut *self)?;
        }
        self.depth -= 1;
        Ok(())
    }
}

impl<'de> de::DeserializeSeed<'de> for &mut Shape {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// An object's key: not a value, but checked for NUL like one.
struct Key<'a>(&'a mut Shape);

impl<'de> de::DeserializeSeed<'de> for Key<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        self.0.text(s)
    }
}

pub fn is_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(json: &str) -> Option<String> {
        match check_shape(json.as_bytes()) {
            Ok(()) => None,
            Err(ApiError::Unparsable(m)) => Some(m),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn depth_values_and_nul_are_bounded() {
        let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(refusal(&nest(MAX_DEPTH)), None);
        assert!(
            refusal(&nest(MAX_DEPTH + 1))
                .unwrap()
                .contains("nests deeper")
        );
        let values = |n: usize| format!("[{}]", vec!["0"; n].join(","));
        assert_eq!(refusal(&values(MAX_VALUES - 1)), None);
        assert!(refusal(&values(MAX_VALUES)).unwrap().contains("more than"));
        for nul in [r#"{"a":"x\u0000"}"#, r#"{"\u0000":1}"#, r#"["\u0000"]"#] {
            assert!(refusal(nul).unwrap().contains("NUL"), "{nul}");
        }
        // An escaped backslash before `u0000` is text, not a NUL.
        assert_eq!(refusal(r#"{"a":"\\u0000"}"#), None);
        // Syntax errors are the typed pass's to report.
        assert_eq!(refusal("{\"a\":"), None);
    }

    proptest::proptest! {
        #[test]
        fn a_string_with_a_nul_is_refused_wherever_it_is(
            before in "[a-z ]{0,8}",
            after in "[a-z ]{0,8}",
            as_key in proptest::bool::ANY,
        ) {
            let text = format!("{before}\u{0}{after}");
            let json = if as_key {
                serde_json::json!({ text: 1 })
            } else {
                serde_json::json!({ "a": [{ "b": text }] })
            };
            let refused = refusal(&json.to_string());
            proptest::prop_assert!(refused.is_some_and(|m| m.contains("NUL")));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = check_shape(&bytes);
            let _ = parse::<serde::de::IgnoredAny>(&bytes);
        }
    }
}
