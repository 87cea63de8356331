//! A JSON field read without trusting its type: a string, `null`, or anything else,
//! which is skipped without being kept. Bodies deserialize into typed structures of
//! these instead of an open `serde_json::Value`, so a client's value costs what the
//! fields kept cost, and the handler still says which field had the wrong type.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A field expected to be a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonText {
    Text(String),
    Null,
    /// A number, boolean, array or object: skipped, not kept.
    Other,
}

impl JsonText {
    /// The string, when the field is one.
    pub fn text(&self) -> Option<&str> {
        match self {
            JsonText::Text(s) => Some(s),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = JsonText;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<JsonText, E> {
        Ok(JsonText::Text(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<JsonText, E> {
        Ok(JsonText::Text(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<JsonText, E> {
        Ok(JsonText::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<JsonText, E> {
        Ok(JsonText::Null)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<JsonText, E> {
        Ok(JsonText::Other)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<JsonText, E> {
        Ok(JsonText::Other)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<JsonText, E> {
        Ok(JsonText::Other)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<JsonText, E> {
        Ok(JsonText::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonText, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(JsonText::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonText, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(JsonText::Other)
    }
}

/// A field that may be a string or an object of string members (the SelfKey
/// signature, the LWS `meta`): an object keeps its members, each as a [`JsonText`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonField {
    Text(String),
    Object(Vec<(String, JsonText)>),
    Null,
    /// A number, boolean or array: skipped, not kept.
    Other,
}

impl JsonField {
    /// Member `key` of an object, if this is one and has it.
    pub fn member(&self, key: &str) -> Option<&JsonText> {
        match self {
            JsonField::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for JsonField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldVisitor)
    }
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = JsonField;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonField, A::Error> {
        let mut members = Vec::new();
        while let Some(entry) = map.next_entry::<String, JsonText>()? {
            members.push(entry);
        }
        Ok(JsonField::Object(members))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<JsonField, E> {
        Ok(JsonField::Text(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<JsonField, E> {
        Ok(JsonField::Text(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<JsonField, E> {
        Ok(JsonField::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<JsonField, E> {
        Ok(JsonField::Null)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<JsonField, E> {
        Ok(JsonField::Other)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<JsonField, E> {
        Ok(JsonField::Other)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<JsonField, E> {
        Ok(JsonField::Other)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<JsonField, E> {
        Ok(JsonField::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonField, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(JsonField::Other)
    }
}
