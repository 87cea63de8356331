//! The configuration reference, generated from the code so that it cannot drift: every
//! key of [`Settings`] with its value and its doc comment, as a TOML file that loads
//! back to the same settings. `gatehouse config --defaults` prints it, `serve --help`
//! ends with it, and README.md carries it (a test fails when the README's copy differs
//! or when a key has no doc comment).
//!
//! The keys and values come from the settings serialised, the comments from their
//! `utoipa::ToSchema` schema, which holds each field's doc comment: a field added to
//! any settings struct appears here by itself.

use std::collections::HashMap;
use std::fmt::Write;

use serde_json::Value;
use utoipa::{PartialSchema, ToSchema};

use super::Settings;

const HEADER: &str = "\
# Gatehouse configuration: every key, its default and what it does.
# `gatehouse config --defaults` prints this file; `gatehouse config` prints the values in
# force (secrets as [redacted]). Pass a file like it with --config FILE. Every key can
# also be set in the environment as GATEHOUSE_ and its path in capitals, sections
# joined with __ (http.public_url: GATEHOUSE_HTTP__PUBLIC_URL; lists comma-separated).
# A key shown commented out is unset by default; its comment says what unset means.

";

/// The reference for these settings' values (the defaults, or the values in force).
pub fn render(settings: &Settings) -> String {
    let schemas = Schemas::new();
    let mut value = serde_json::to_value(settings).expect("settings serialise to JSON");
    if let Some(url) = &settings.database_url {
        value["database_url"] = redact_url_password(url).into();
    }
    let mut out = String::from(HEADER);
    schemas.section(&mut out, &[], schemas.root(), &value);
    out
}

/// A URL with its password as `[redacted]`: in its user-info (`postgres://u:PASS@h/db`)
/// and in a `password=` query parameter (`postgres://u@h/db?password=PASS`), the two
/// places PostgreSQL's URLs take one. User, host, database and the rest stay.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:[redacted]@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((q, f)) => (q, format!("#{f}")),
                None => (query, String::new()),
            };
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}=[redacted]")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}{fragment}", pairs.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Every key that has no doc comment (`section.key`); the tests require none.
pub fn undocumented() -> Vec<String> {
    let schemas = Schemas::new();
    let value = serde_json::to_value(Settings::default()).expect("settings serialise to JSON");
    let mut missing = Vec::new();
    schemas.collect_undocumented(&mut missing, "", schemas.root(), &value);
    missing
}

/// The settings' JSON schemas, by name, with `$ref`s resolved on demand.
struct Schemas {
    named: HashMap<String, Value>,
    root: Value,
}

impl Schemas {
    fn new() -> Schemas {
        let mut list = Vec::new();
        <Settings as ToSchema>::schemas(&mut list);
        let to_json = |s| serde_json::to_value(s).expect("a schema serialises to JSON");
        Schemas {
            named: list.into_iter().map(|(n, s)| (n, to_json(s))).collect(),
            root: to_json(Settings::schema()),
        }
    }

    fn root(&self) -> &Value {
        &self.root
    }

    /// A schema with a `$ref` (also inside an `Option`'s `oneOf`) replaced by its target.
    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        let reference = schema.get("$ref").or_else(|| {
            schema
                .get("oneOf")?
                .as_array()?
                .iter()
                .find_map(|s| s.get("$ref"))
        });
        reference
            .and_then(Value::as_str)
            .and_then(|r| r.rsplit('/').next())
            .and_then(|name| self.named.get(name))
            .unwrap_or(schema)
    }

    /// The schema of property `key` of an object schema, and its description (the
    /// field's doc comment, else its type's).
    fn property<'a>(&'a self, object: &'a Value, key: &str) -> (&'a Value, Option<&'a str>) {
        let object = self.resolve(object);
        let Some(prop) = object.get("properties").and_then(|p| p.get(key)) else {
            return (&Value::Null, None);
        };
        let target = self.resolve(prop);
        let description = prop
            .get("description")
            .or_else(|| target.get("description"))
            .and_then(Value::as_str)
            .filter(|d| !d.trim().is_empty());
        (target, description)
    }

    /// Writes `[path]`, its keys, its arrays of tables, then its sub-tables.
    fn section(&self, out: &mut String, path: &[&str], schema: &Value, value: &Value) {
        let Some(fields) = value.as_object() else {
            return;
        };
        for (key, v) in fields {
            if kind(v) == Kind::Key {
                let (_, doc) = self.property(schema, key);
                comment(out, doc);
                match v {
                    Value::Null => writeln!(out, "# {key} =").unwrap(),
                    v => writeln!(out, "{key} = {}", toml_value(v)).unwrap(),
                }
            }
        }
        for (key, v) in fields {
            if kind(v) == Kind::ArrayOfTables {
                let (prop, doc) = self.property(schema, key);
                let item = self.resolve(prop.get("items").unwrap_or(&Value::Null));
                let name = joined(path, key);
                out.push('\n');
                comment(out, doc);
                for element in v.as_array().into_iter().flatten() {
                    writeln!(out, "[[{name}]]").unwrap();
                    self.keys_of_table(out, item, element);
                }
            }
        }
        for (key, v) in fields {
            if kind(v) == Kind::Table {
                let (prop, doc) = self.property(schema, key);
                let mut sub = path.to_vec();
                sub.push(key);
                out.push('\n');
                comment(out, doc);
                writeln!(out, "[{}]", sub.join(".")).unwrap();
                self.section(out, &sub, prop, v);
            }
        }
    }

    /// The keys of one element of an array of tables, each with its comment.
    fn keys_of_table(&self, out: &mut String, schema: &Value, element: &Value) {
        for (key, v) in element.as_object().into_iter().flatten() {
            comment(out, self.property(schema, key).1);
            writeln!(out, "{key} = {}", toml_value(v)).unwrap();
        }
    }

    fn collect_undocumented(
        &self,
        missing: &mut Vec<String>,
        path: &str,
        schema: &Value,
        value: &Value,
    ) {
        for (key, v) in value.as_object().into_iter().flatten() {
            let (prop, doc) = self.property(schema, key);
            let name = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            if doc.is_none() {
                missing.push(name.clone());
            }
            match kind(v) {
                Kind::Table => self.collect_undocumented(missing, &name, prop, v),
                Kind::ArrayOfTables => {
                    let item = self.resolve(prop.get("items").unwrap_or(&Value::Null));
                    if let Some(first) = v.as_array().and_then(|a| a.first()) {
                        self.collect_undocumented(missing, &format!("{name}[]"), item, first);
                    }
                }
                Kind::Key => {}
            }
        }
    }
}

#[derive(PartialEq, Eq)]
enum Kind {
    Key,
    Table,
    ArrayOfTables,
}

fn kind(v: &Value) -> Kind {
    match v {
        Value::Object(_) => Kind::Table,
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            Kind::ArrayOfTables
        }
        _ => Kind::Key,
    }
}

fn joined(path: &[&str], key: &str) -> String {
    let mut parts = path.to_vec();
    parts.push(key);
    parts.join(".")
}

fn comment(out: &mut String, doc: Option<&str>) {
    for line in doc.into_iter().flat_map(str::lines) {
        let line = line.trim_end();
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            writeln!(out, "# {}", line.trim_start()).unwrap();
        }
    }
}

/// A JSON value written as TOML (strings quoted and escaped, arrays inline).
fn toml_value(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k} = {}", toml_value(v)))
                .collect();
            format!("{{ {} }}", fields.join(", "))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(toml_value).collect();
            format!("[{}]", items.join(", "))
        }
        Value::String(s) => toml::Value::String(s.clone()).to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use figment::Figment;
    use figment::providers::{Format, Toml};

    use super::*;

    #[test]
    fn every_key_has_a_doc_comment() {
        let missing = undocumented();
        assert!(
            missing.is_empty(),
            "settings without a doc comment (the configuration reference needs one): {missing:?}"
        );
    }

    #[test]
    fn the_reference_loads_back_to_the_defaults() {
        let text = render(&Settings::default());
        let loaded: Settings = Figment::from(Toml::string(&text))
            .extract()
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            serde_json::to_value(&loaded).unwrap(),
            serde_json::to_value(Settings::default()).unwrap()
        );
    }

    #[test]
    fn every_key_is_in_the_reference_with_its_comment() {
        let text = render(&Settings::default());
        for line in [
            "listen = \"127.0.0.1:8080\"",
            "# database_url =",
            "[http]",
            "# Proxies (addresses or CIDR ranges) whose `X-Forwarded-*` headers are trusted.",
            "trusted_proxies = []",
            "[[selfkey.attributes]]",
            "[selfkey.website]",
            "name = \"Gatehouse\"",
            "# max_in_flight =",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
        }
    }

    #[test]
    fn secrets_in_force_are_redacted() {
        let settings = Settings {
            jwt_secret: Some(crate::domain::Secret::new("s".repeat(40))),
            ..Settings::default()
        };
        let text = render(&settings);
        assert!(text.contains("jwt_secret = \"[redacted]\""), "{text}");
        assert!(!text.contains(&"s".repeat(40)));
    }

    #[test]
    fn the_database_password_in_force_is_redacted() {
        let settings = Settings {
            database_url: Some("postgres://gatehouse:pg-pass-w0rd@db.internal:5432/auth".into()),
            ..Settings::default()
        };
        let text = render(&settings);
        assert!(
            text.lines()
                .any(|l| l
                    == "database_url = \"postgres://gatehouse:[redacted]@db.internal:5432/auth\""),
            "{text}"
        );
        assert!(!text.contains("pg-pass-w0rd"), "{text}");
        for (url, redacted) in [
            (
                "postgres://u:p%40ss@h/db?sslmode=require",
                "postgres://u:[redacted]@h/db?sslmode=require",
            ),
            (
                "postgresql://u@h/db?sslmode=require&password=secret",
                "postgresql://u@h/db?sslmode=require&password=[redacted]",
            ),
            ("postgres://u:a:b@c@h", "postgres://u:[redacted]@h"),
            ("postgres://u@h/db", "postgres://u@h/db"),
            (
                "sqlite:///var/lib/gatehouse/g.db",
                "sqlite:///var/lib/gatehouse/g.db",
            ),
        ] {
            assert_eq!(redact_url_password(url), redacted, "{url}");
        }
    }
}
