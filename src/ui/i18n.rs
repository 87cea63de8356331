//! The pages' message catalogue: Fluent (Mozilla's) resources, one per language,
//! compiled into the binary; a language chosen by `Accept-Language`.

use std::sync::Arc;

use anyhow::Context;
use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource};
use unic_langid::LanguageIdentifier;

/// The languages the pages speak, and their catalogues. Adding one: a `<tag>.ftl`
/// beside these with every id of en.ftl, and a line here.
const CATALOGUES: [(&str, &str); 2] = [
    ("en", include_str!("locales/en.ftl")),
    ("de", include_str!("locales/de.ftl")),
];

/// The language tags of [`CATALOGUES`].
pub const LANGUAGES: [&str; CATALOGUES.len()] = {
    let mut tags = [""; CATALOGUES.len()];
    let mut i = 0;
    while i < CATALOGUES.len() {
        tags[i] = CATALOGUES[i].0;
        i += 1;
    }
    tags
};

/// A language of the catalogue (an index into it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lang(usize);

impl Lang {
    /// Its BCP 47 tag, for `<html lang>`.
    pub fn tag(self) -> &'static str {
        CATALOGUES[self.0].0
    }

    /// Every language of the catalogue.
    pub fn all() -> impl Iterator<Item = Lang> {
        (0..CATALOGUES.len()).map(Lang)
    }

    /// Its place in [`Lang::all`].
    pub fn index(self) -> usize {
        self.0
    }
}

pub struct Catalogue {
    bundles: Vec<FluentBundle<FluentResource>>,
    ids: Vec<LanguageIdentifier>,
    default: Lang,
}

impl Catalogue {
    /// Every catalogue parsed; `default` must be one of [`LANGUAGES`].
    pub fn load(default: &str) -> anyhow::Result<Catalogue> {
        let mut bundles = Vec::new();
        let mut ids = Vec::new();
        for (tag, source) in CATALOGUES {
            let id: LanguageIdentifier = tag.parse().context("a catalogue's language tag")?;
            let resource = FluentResource::try_new(source.to_owned())
                .map_err(|(_, errors)| anyhow::anyhow!("catalogue {tag}: {errors:?}"))?;
            let mut bundle = FluentBundle::new_concurrent(vec![id.clone()]);
            // No Unicode isolation marks around arguments: the text goes into HTML.
            bundle.set_use_isolating(false);
            bundle
                .add_resource(resource)
                .map_err(|errors| anyhow::anyhow!("catalogue {tag}: {errors:?}"))?;
            bundles.push(bundle);
            ids.push(id);
        }
        let default = LANGUAGES
            .iter()
            .position(|t| *t == default)
            .map(Lang)
            .with_context(|| {
                format!(
                    "configuration: ui.default_language: must be one of {}",
                    LANGUAGES.join(", ")
                )
            })?;
        Ok(Catalogue {
            bundles,
            ids,
            default,
        })
    }

    /// The language for an `Accept-Language` header: the first it accepts that the
    /// catalogue has, else the default.
    pub fn negotiate(&self, accept_language: Option<&str>) -> Lang {
        let Some(header) = accept_language else {
            return self.default;
        };
        let requested = fluent_langneg::accepted_languages::parse(header);
        let chosen = fluent_langneg::negotiate_languages(
            &requested,
            &self.ids,
            Some(&self.ids[self.default.0]),
            fluent_langneg::NegotiationStrategy::Lookup,
        );
        chosen
            .first()
            .and_then(|id| self.ids.iter().position(|known| known == *id))
            .map_or(self.default, Lang)
    }

    /// The first language of an OpenID Connect `ui_locales` (space-separated BCP 47
    /// tags, in order of preference) that the catalogue has; `None` if it has none.
    pub fn pick(&self, ui_locales: &str) -> Option<Lang> {
        ui_locales
            .split(' ')
            .filter_map(|tag| tag.parse::<LanguageIdentifier>().ok())
            .find_map(|asked| {
                self.ids
                    .iter()
                    .position(|known| known.language == asked.language)
            })
            .map(Lang)
    }

    /// The language of [`LANGUAGES`] named `tag`, else the default.
    pub fn lang(&self, tag: Option<&str>) -> Lang {
        tag.and_then(|t| LANGUAGES.iter().position(|known| *known == t))
            .map_or(self.default, Lang)
    }

    /// Message `id` in `lang` (in English if that language lacks it, and the id itself
    /// if no language has it).
    pub fn message(&self, lang: Lang, id: &str, args: Option<&FluentArgs>) -> String {
        for bundle in [&self.bundles[lang.0], &self.bundles[0]] {
            if let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) {
                let mut errors = Vec::new();
                return bundle
                    .format_pattern(pattern, args, &mut errors)
                    .into_owned();
            }
        }
        id.to_owned()
    }
}

/// The tag of the language of [`LANGUAGES`] an `Accept-Language` header asks for
/// first, or `None` when it asks for none of them (the default then applies).
pub fn requested(accept_language: &str) -> Option<&'static str> {
    // Parsed once: this runs for every request that names a language.
    static AVAILABLE: std::sync::LazyLock<Vec<LanguageIdentifier>> =
        std::sync::LazyLock::new(|| LANGUAGES.iter().filter_map(|t| t.parse().ok()).collect());
    let available = &*AVAILABLE;
    let requested = fluent_langneg::accepted_languages::parse(accept_language);
    let chosen = fluent_langneg::negotiate_languages(
        &requested,
        available,
        None,
        fluent_langneg::NegotiationStrategy::Lookup,
    );
    let first = chosen.first()?;
    available
        .iter()
        .position(|known| known == *first)
        .map(|i| LANGUAGES[i])
}

/// The messages of one language, for a template: `{{ t["sign-in"] }}`.
#[derive(Debug)]
pub struct Messages {
    pub(super) catalogue: Arc<Catalogue>,
    pub(super) lang: Lang,
}

impl std::fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalogue").field("ids", &self.ids).finish()
    }
}

impl minijinja::value::Object for Messages {
    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        let id = key.as_str()?;
        Some(self.catalogue.message(self.lang, id, None).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message ids of a catalogue (each message is one `id = text` line).
    fn ids(source: &str) -> Vec<String> {
        assert!(FluentResource::try_new(source.to_owned()).is_ok());
        let mut ids: Vec<String> = source
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| l.split_once(" = ").map(|(id, _)| id.to_owned()))
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn every_language_has_every_message() {
        let english = ids(CATALOGUES[0].1);
        assert!(english.len() > 50);
        for (tag, source) in &CATALOGUES[1..] {
            assert_eq!(ids(source), english, "{tag} differs from en");
        }
    }

    #[test]
    fn accept_language_picks_a_known_language_or_the_default() {
        let c = Catalogue::load("en").unwrap();
        assert_eq!(c.negotiate(None).tag(), "en");
        assert_eq!(c.negotiate(Some("de-DE,de;q=0.9,en;q=0.5")).tag(), "de");
        assert_eq!(c.negotiate(Some("fr-FR, en;q=0.8")).tag(), "en");
        assert_eq!(c.negotiate(Some("fr")).tag(), "en");
        assert_eq!(c.negotiate(Some("garbage;;;")).tag(), "en");
        let german = Catalogue::load("de").unwrap();
        assert_eq!(german.negotiate(Some("fr")).tag(), "de");
        assert_eq!(
            german.message(german.negotiate(None), "sign-in", None),
            "Anmelden"
        );
        assert!(Catalogue::load("xx").is_err());
        assert_eq!(c.pick("fr-CA de-AT en").map(Lang::tag), Some("de"));
        assert_eq!(c.pick("fr ???"), None);
        assert_eq!(requested("de-AT, en;q=0.5"), Some("de"));
        assert_eq!(requested("fr"), None);
        assert_eq!(german.lang(None).tag(), "de");
        assert_eq!(german.lang(Some("en")).tag(), "en");
    }
}
