//! SIP addresses as the `From` header and JWT claims carry them: `sip:user@domain`.

/// `user` and `domain` of a `sip:`/`sips:` URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipAddress {
    /// Text between the scheme and the first `@`.
    pub username: String,
    /// Text after it, up to a second `@` (a `:port` stays attached, as upstream does).
    pub domain: String,
}

/// Parses a `From` value: parameters after `;` are dropped, the rest is percent-decoded and must be a plain
/// `sip:`/`sips:` URI with a user part (display names, brackets and quotes are refused).
pub fn parse_from(value: &str) -> Option<SipAddress> {
    let uri = value.split(';').next().unwrap_or("").trim();
    let decoded = percent_encoding::percent_decode_str(uri)
        .decode_utf8()
        .ok()?;
    parse_uri(&decoded)
}

/// Parses `sip:user@domain` (scheme case-insensitive).
pub fn parse_uri(uri: &str) -> Option<SipAddress> {
    let lower = uri
        .get(..5)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let rest = if lower.starts_with("sips:") {
        &uri[5..]
    } else if lower.starts_with("sip:") {
        &uri[4..]
    } else {
        return None;
    };
    if rest.is_empty()
        || rest
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '<' | '>' | '"'))
    {
        return None;
    }
    let (username, after) = rest.split_once('@')?;
    let domain = after.split('@').next().unwrap_or("");
    let host = domain.split('?').next().unwrap_or("");
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'));
    if username.is_empty() || !host_ok {
        return None;
    }
    Some(SipAddress {
        username: username.to_owned(),
        domain: domain.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_values() {
        let address = parse_from("sip:alice@sip.example.com;tag=abc").unwrap();
        assert_eq!(address.username, "alice");
        assert_eq!(address.domain, "sip.example.com");
        assert_eq!(parse_from("SIPS:bob%40x@d.org").unwrap().username, "bob");
        assert_eq!(
            parse_from("sip:bob@d.org:5060").unwrap().domain,
            "d.org:5060"
        );
        assert!(parse_from("\"Alice\" <sip:alice@d.org>").is_none());
        assert!(parse_from("sip:example.com").is_none());
        assert!(parse_from("alice@d.org").is_none());
        assert!(parse_from("").is_none());
    }
}
