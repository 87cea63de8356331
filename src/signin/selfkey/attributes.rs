//! The information a wallet shares when it signs up, matched against what the site
//! asks for (`selfkey.attributes`). Only requested attributes are kept: the rest of
//! what a wallet sends is not the site's business.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Value, json};

use crate::config::RequestedAttribute;
use crate::domain::Email;
use crate::domain::lenient::{JsonField, JsonText};

/// The configured key of the attribute that can become the account's email.
const EMAIL_KEY: &str = "email";
const DOCUMENT_PREFIX: &str = "$document-";

/// A file sent alongside the attributes (a multipart part named `$document-<n>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub mime_type: String,
    pub bytes: Vec<u8>,
}

/// True for the names wallets give document parts and their references:
/// `$document-` and digits.
pub fn is_document_ref(name: &str) -> bool {
    name.strip_prefix(DOCUMENT_PREFIX)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttributeError {
    #[error("The 'attributes' field must be a JSON array of attribute objects.")]
    NotAList,
    #[error("No attributes were provided.")]
    Empty,
    #[error("The '{0}' attribute is required and was not provided.")]
    Missing(String),
    #[error("The '{0}' attribute must be a valid email address.")]
    InvalidEmail(String),
    #[error("The attributes refer to '{0}', which is not a file of this request.")]
    MissingDocument(String),
    #[error("The attributes refer to '{0}' more than once.")]
    DocumentReused(String),
}

/// At most this many attributes in one sign-up: far more than a site asks for.
pub const MAX_SUBMITTED: usize = 100;

/// The `attributes` of a sign-up as the wallet sent them, typed: each attribute's
/// identifiers and its data. Anything else in an attribute is skipped, not kept.
#[derive(Debug, Clone, PartialEq)]
pub enum Submitted {
    /// Absent or `null`.
    Missing,
    List(Vec<SubmittedAttribute>),
    /// Not an array of objects.
    NotAList,
}

/// One attribute a wallet sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubmittedAttribute {
    /// Its `id`, `schemaId` and `schema.$id`, those that are strings.
    pub ids: Vec<String>,
    /// Its `data`: JSON of the attribute's schema, as bounded as the body it came in
    /// ([`check_shape`](crate::http::json::check_shape) runs first).
    pub data: Option<Value>,
}

impl<'de> Deserialize<'de> for Submitted {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SubmittedVisitor)
    }
}

struct SubmittedVisitor;

impl<'de> Visitor<'de> for SubmittedVisitor {
    type Value = Submitted;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of attribute objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Submitted, A::Error> {
        let mut items = Vec::new();
        let mut all_objects = true;
        while let Some(item) = seq.next_element::<Item>()? {
            if items.len() == MAX_SUBMITTED {
                return Err(de::Error::custom(format_args!(
                    "more than {MAX_SUBMITTED} attributes"
                )));
            }
            match item.0 {
                Some(item) => items.push(item),
                None => all_objects = false,
            }
        }
        Ok(if all_objects {
            Submitted::List(items)
        } else {
            Submitted::NotAList
        })
    }

    fn visit_unit<E: de::Error>(self) -> Result<Submitted, E> {
        Ok(Submitted::Missing)
    }

    fn visit_none<E: de::Error>(self) -> Result<Submitted, E> {
        Ok(Submitted::Missing)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Submitted, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Submitted::NotAList)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Submitted, E> {
        Ok(Submitted::NotAList)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Submitted, E> {
        Ok(Submitted::NotAList)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Submitted, E> {
        Ok(Submitted::NotAList)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Submitted, E> {
        Ok(Submitted::NotAList)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Submitted, E> {
        Ok(Submitted::NotAList)
    }
}

/// An element of the list: an attribute object, or `None` for anything else.
struct Item(Option<SubmittedAttribute>);

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ItemVisitor)
    }
}

struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = Item;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an attribute object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
        let mut item = SubmittedAttribute::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "id" | "schemaId" => {
                    if let JsonText::Text(id) = map.next_value()? {
                        item.ids.push(id);
                    }
                }
                "schema" => {
                    if let Some(JsonText::Text(id)) = map.next_value::<JsonField>()?.member("$id") {
                        item.ids.push(id.clone());
                    }
                }
                "data" => item.data = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Item(Some(item)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Item(None))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Item, E> {
        Ok(Item(None))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Item, E> {
        Ok(Item(None))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Item, E> {
        Ok(Item(None))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Item, E> {
        Ok(Item(None))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Item, E> {
        Ok(Item(None))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Item, E> {
        Ok(Item(None))
    }
}

/// Requested attributes as a wallet provided them, checked: what is stored with the
/// wallet, and the email it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Attributes {
    /// `{"key","schema","data"}` per provided attribute, in the configured order.
    stored: Vec<Value>,
    email: Option<Email>,
}

impl Attributes {
    /// Matches each requested attribute to the first submitted one whose `id`,
    /// `schemaId` or `schema.$id` is its schema URL or key; unwraps `{"value": …}`
    /// data; replaces `$document-<n>` strings in the data by the file's mime type,
    /// size and base64 content.
    pub fn parse(
        submitted: &Submitted,
        documents: &HashMap<String, Document>,
        requested: &[RequestedAttribute],
    ) -> Result<Attributes, AttributeError> {
        let items = match submitted {
            Submitted::Missing => return Err(AttributeError::Empty),
            Submitted::NotAList => return Err(AttributeError::NotAList),
            Submitted::List(items) => items,
        };
        if items.is_empty() {
            return Err(AttributeError::Empty);
        }
        let mut resolver = Resolver {
            documents,
            used: HashSet::new(),
        };
        let mut stored = Vec::with_capacity(requested.len());
        let mut email = None;
        for wanted in requested {
            let data = items
                .iter()
                .find(|item| {
                    item.ids
                        .iter()
                        .any(|id| *id == wanted.schema || *id == wanted.key)
                })
                .and_then(|item| item.data.as_ref())
                .map(unwrap_value)
                .filter(|data| !is_blank(data));
            let Some(data) = data else {
                if wanted.required {
                    return Err(AttributeError::Missing(wanted.key.clone()));
                }
                continue;
            };
            let data = if wanted.key == EMAIL_KEY {
                let parsed = data
                    .as_str()
                    .and_then(|s| Email::parse(s, EMAIL_KEY).ok())
                    .ok_or_else(|| AttributeError::InvalidEmail(wanted.key.clone()))?;
                let value = Value::String(parsed.as_str().to_string());
                email = Some(parsed);
                value
            } else {
                resolver.resolve(data)?
            };
            stored.push(json!({"key": wanted.key, "schema": wanted.schema, "data": data}));
        }
        Ok(Attributes { stored, email })
    }

    /// The email attribute, when the site asks for one and the wallet gave it.
    pub fn email(&self) -> Option<&Email> {
        self.email.as_ref()
    }

    pub fn to_json(&self) -> String {
        Value::Array(self.stored.clone()).to_string()
    }
}

/// Wallets send data either bare or as `{"value": …}`.
fn unwrap_value(data: &Value) -> &Value {
    data.get("value").unwrap_or(data)
}

fn is_blank(data: &Value) -> bool {
    match data {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

struct Resolver<'a> {
    documents: &'a HashMap<String, Document>,
    /// Each file is embedded once, so a body of many references to one large file
    /// cannot multiply into far more memory than the body limit.
    used: HashSet<&'a str>,
}

impl<'a> Resolver<'a> {
    /// [`MAX_DEPTH`](crate::http::json::MAX_DEPTH) bounds the recursion.
    fn resolve(&mut self, data: &Value) -> Result<Value, AttributeError> {
        Ok(match data {
            Value::String(s) if is_document_ref(s) => {
                let (name, document) = self
                    .documents
                    .get_key_value(s.as_str())
                    .ok_or_else(|| AttributeError::MissingDocument(s.clone()))?;
                if !self.used.insert(name.as_str()) {
                    return Err(AttributeError::DocumentReused(s.clone()));
                }
                json!({
                    "mimeType": document.mime_type,
                    "size": document.bytes.len(),
                    "content": BASE64.encode(&document.bytes),
                })
            }
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| self.resolve(item))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.resolve(v)?)))
                    .collect::<Result<_, AttributeError>>()?,
            ),
            other => other.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMAIL_SCHEMA: &str = "http://platform.selfkey.org/schema/attribute/email.json";
    const PASSPORT_SCHEMA: &str = "http://platform.selfkey.org/schema/attribute/passport.json";

    fn requested() -> Vec<RequestedAttribute> {
        vec![
            RequestedAttribute {
                key: "email".into(),
                label: "Email".into(),
                schema: EMAIL_SCHEMA.into(),
                required: true,
            },
            RequestedAttribute {
                key: "passport".into(),
                label: "Passport".into(),
                schema: PASSPORT_SCHEMA.into(),
                required: false,
            },
        ]
    }

    fn no_documents() -> HashMap<String, Document> {
        HashMap::new()
    }

    fn typed(value: &Value) -> Submitted {
        serde_json::from_value(value.clone()).unwrap()
    }

    #[test]
    fn matches_by_id_schema_id_or_schema_dollar_id_and_unwraps_values() {
        for item in [
            json!({"id": EMAIL_SCHEMA, "data": {"value": " Joe@Example.com "}}),
            json!({"id": "email", "data": "Joe@Example.com"}),
            json!({"id": 7, "schemaId": EMAIL_SCHEMA, "data": {"value": "Joe@Example.com"}}),
            json!({"schema": {"$id": EMAIL_SCHEMA}, "data": "Joe@Example.com"}),
        ] {
            let attrs =
                Attributes::parse(&typed(&json!([item])), &no_documents(), &requested()).unwrap();
            assert_eq!(attrs.email().unwrap().key(), "joe@example.com", "{item}");
            assert_eq!(
                attrs.to_json(),
                json!([{"key": "email", "schema": EMAIL_SCHEMA, "data": "Joe@Example.com"}])
                    .to_string()
            );
        }
    }

    #[test]
    fn unrequested_attributes_are_dropped_and_optional_ones_may_be_missing() {
        let submitted = json!([
            {"id": "http://platform.selfkey.org/schema/attribute/first_name.json", "data": "Joe"},
            {"id": "email", "data": {"value": "joe@example.com"}},
        ]);
        let attrs = Attributes::parse(&typed(&submitted), &no_documents(), &requested()).unwrap();
        assert_eq!(
            attrs.to_json(),
            json!([{"key": "email", "schema": EMAIL_SCHEMA, "data": "joe@example.com"}])
                .to_string()
        );
    }

    #[test]
    fn refusals() {
        let cases = [
            (json!({"id": "email"}), AttributeError::NotAList),
            (json!("email"), AttributeError::NotAList),
            (json!([1, 2]), AttributeError::NotAList),
            (json!([]), AttributeError::Empty),
            (Value::Null, AttributeError::Empty),
            (
                json!([{"id": "passport", "data": "x"}]),
                AttributeError::Missing("email".into()),
            ),
            (
                json!([{"id": "email", "data": {"value": "  "}}]),
                AttributeError::Missing("email".into()),
            ),
            (
                json!([{"id": "email", "data": null}]),
                AttributeError::Missing("email".into()),
            ),
            (
                json!([{"id": "email", "data": "not-an-email"}]),
                AttributeError::InvalidEmail("email".into()),
            ),
            (
                json!([{"id": "email", "data": {"value": 42}}]),
                AttributeError::InvalidEmail("email".into()),
            ),
            (
                json!([{"id": "email", "data": "a@example.com"}, {"id": "passport", "data": {"value": {"image": "$document-2"}}}]),
                AttributeError::MissingDocument("$document-2".into()),
            ),
        ];
        for (submitted, expected) in cases {
            let err =
                Attributes::parse(&typed(&submitted), &no_documents(), &requested()).unwrap_err();
            assert_eq!(err, expected, "{submitted}");
        }
    }

    #[test]
    fn document_references_are_replaced_once_each() {
        let documents = HashMap::from([
            (
                "$document-1".to_string(),
                Document {
                    mime_type: "image/png".into(),
                    bytes: b"front".to_vec(),
                },
            ),
            (
                "$document-2".to_string(),
                Document {
                    mime_type: "image/jpeg".into(),
                    bytes: b"back".to_vec(),
                },
            ),
        ]);
        let submitted = json!([
            {"id": "email", "data": "a@example.com"},
            {"id": PASSPORT_SCHEMA, "data": {"value": {"number": "X1", "images": ["$document-1", {"back": "$document-2"}], "note": "$document-x"}}},
        ]);
        let attrs = Attributes::parse(&typed(&submitted), &documents, &requested()).unwrap();
        let stored: Value = serde_json::from_str(&attrs.to_json()).unwrap();
        assert_eq!(
            stored[1],
            json!({"key": "passport", "schema": PASSPORT_SCHEMA, "data": {
                "number": "X1",
                "images": [
                    {"mimeType": "image/png", "size": 5, "content": "ZnJvbnQ="},
                    {"back": {"mimeType": "image/jpeg", "size": 4, "content": "YmFjaw=="}},
                ],
                "note": "$document-x",
            }})
        );
        let reused = json!([
            {"id": "email", "data": "a@example.com"},
            {"id": "passport", "data": ["$document-1", "$document-1"]},
        ]);
        assert_eq!(
            Attributes::parse(&typed(&reused), &documents, &requested()).unwrap_err(),
            AttributeError::DocumentReused("$document-1".into())
        );
    }

    #[test]
    fn document_reference_names() {
        for good in ["$document-1", "$document-0042"] {
            assert!(is_document_ref(good), "{good}");
        }
        for bad in [
            "$document-",
            "$document-1a",
            "document-1",
            "$document-#ref{document1.id}",
            "attributes",
        ] {
            assert!(!is_document_ref(bad), "{bad}");
        }
    }
}
