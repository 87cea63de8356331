//! The information a wallet shares when it signs up, matched against what the site
//! asks for (`selfkey.attributes`). Only requested attributes are kept: the rest of
//! what a wallet sends is not the site's business.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use crate::config::RequestedAttribute;
use crate::domain::Email;

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
        submitted: &Value,
        documents: &HashMap<String, Document>,
        requested: &[RequestedAttribute],
    ) -> Result<Attributes, AttributeError> {
        if submitted.is_null() {
            return Err(AttributeError::Empty);
        }
        let items = submitted
            .as_array()
            .ok_or(AttributeError::NotAList)?
            .iter()
            .map(Value::as_object)
            .collect::<Option<Vec<_>>>()
            .ok_or(AttributeError::NotAList)?;
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
                .find(|item| identifiers(item).any(|id| id == wanted.schema || id == wanted.key))
                .and_then(|item| item.get("data"))
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

fn identifiers(item: &Map<String, Value>) -> impl Iterator<Item = &str> {
    [
        item.get("id"),
        item.get("schemaId"),
        item.get("schema").and_then(|s| s.get("$id")),
    ]
    .into_iter()
    .flatten()
    .filter_map(Value::as_str)
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
    /// Serde's nesting limit (128) bounds the recursion.
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

    #[test]
    fn matches_by_id_schema_id_or_schema_dollar_id_and_unwraps_values() {
        for item in [
            json!({"id": EMAIL_SCHEMA, "data": {"value": " Joe@Example.com "}}),
            json!({"id": "email", "data": "Joe@Example.com"}),
            json!({"id": 7, "schemaId": EMAIL_SCHEMA, "data": {"value": "Joe@Example.com"}}),
            json!({"schema": {"$id": EMAIL_SCHEMA}, "data": "Joe@Example.com"}),
        ] {
            let attrs = Attributes::parse(&json!([item]), &no_documents(), &requested()).unwrap();
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
        let attrs = Attributes::parse(&submitted, &no_documents(), &requested()).unwrap();
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
            let err = Attributes::parse(&submitted, &no_documents(), &requested()).unwrap_err();
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
        let attrs = Attributes::parse(&submitted, &documents, &requested()).unwrap();
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
            Attributes::parse(&reused, &documents, &requested()).unwrap_err(),
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
