//! Message language chosen from `Accept-Language`: French or English (the default and fallback).

use http::HeaderMap;

/// The two locales upstream ships.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Locale {
    /// English (default).
    #[default]
    En,
    /// French.
    Fr,
}

impl Locale {
    /// Best match of an `Accept-Language` value among `en` and `fr`, honouring quality values;
    /// a region subtag matches its language (`fr-FR` → `fr`); no match → English.
    pub fn from_accept_language(value: &str) -> Locale {
        let mut best: Option<(f32, Locale)> = None;
        for item in value.split(',') {
            let mut parts = item.trim().split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let quality = parts
                .find_map(|p| p.trim().strip_prefix("q=").map(str::to_owned))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let language = tag.split(['-', '_']).next().unwrap_or("");
            let locale = match language {
                "fr" => Locale::Fr,
                "en" => Locale::En,
                _ => continue,
            };
            if quality > 0.0 && best.is_none_or(|(q, _)| quality > q) {
                best = Some((quality, locale));
            }
        }
        best.map_or(Locale::En, |(_, locale)| locale)
    }

    /// The locale of a request's headers.
    pub fn from_headers(headers: &HeaderMap) -> Locale {
        headers
            .get(http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .map_or(Locale::En, Locale::from_accept_language)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(Locale::from_accept_language("fr"), Locale::Fr);
        assert_eq!(Locale::from_accept_language("fr-FR,fr;q=0.9"), Locale::Fr);
        assert_eq!(Locale::from_accept_language("de"), Locale::En);
        assert_eq!(
            Locale::from_accept_language("en;q=0.4, fr;q=0.8"),
            Locale::Fr
        );
        assert_eq!(Locale::from_accept_language("fr;q=0.2, en"), Locale::En);
        assert_eq!(Locale::from_accept_language(""), Locale::En);
    }
}
