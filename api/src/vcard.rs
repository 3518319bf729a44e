//! vCard parsing, validation and re-serialisation for the vCards storage (api-accounts.md §2.12).
//!
//! Upstream runs submitted cards through sabre/vobject: parse, refuse any validation issue, require a `UID`,
//! then store the re-serialised text with LF line ends. This module reproduces what matters of that round
//! trip: unfolding, upper-cased property names, `VERSION` moved first, other properties in submitted order,
//! lines folded at 75 octets (continuations start with one space, never inside a UTF-8 character), `\n` after
//! every line.

/// One content line: name (upper-cased), raw parameters (with their leading `;`), raw value.
#[derive(Clone, Debug, PartialEq)]
struct Property {
    name: String,
    params: String,
    value: String,
}

/// A parsed vCard.
#[derive(Clone, Debug, PartialEq)]
pub struct Vcard {
    properties: Vec<Property>,
}

/// Properties a vCard may carry at most once (sabre/vobject's cardinality `?` / `1`).
const AT_MOST_ONCE: [&str; 9] = [
    "BDAY",
    "ANNIVERSARY",
    "GENDER",
    "KIND",
    "N",
    "PRODID",
    "REV",
    "UID",
    "VERSION",
];

/// Splits a content line at the first `:` outside double quotes (parameter values may be quoted).
fn split_line(line: &str) -> Option<(&str, &str)> {
    let mut quoted = false;
    for (index, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ':' if !quoted => return Some((&line[..index], &line[index + 1..])),
            _ => {}
        }
    }
    None
}

impl Vcard {
    /// Parses one vCard; None when the text is not a single well-formed card.
    pub fn parse(text: &str) -> Option<Vcard> {
        let normalised = text.replace("\r\n", "\n").replace('\r', "\n");
        // Unfolding: a line starting with a space or a tab continues the previous one.
        let mut lines: Vec<String> = Vec::new();
        for raw in normalised.split('\n') {
            if let Some(rest) = raw.strip_prefix([' ', '\t']) {
                lines.last_mut()?.push_str(rest);
            } else if !raw.trim().is_empty() {
                lines.push(raw.to_owned());
            }
        }
        let (first, rest) = lines.split_first()?;
        let (last, body) = rest.split_last()?;
        if !first.trim().eq_ignore_ascii_case("BEGIN:VCARD")
            || !last.trim().eq_ignore_ascii_case("END:VCARD")
        {
            return None;
        }
        let mut properties = Vec::new();
        for line in body {
            let (head, value) = split_line(line)?;
            let (name, params) = match head.find(';') {
                Some(index) => (&head[..index], &head[index..]),
                None => (head, ""),
            };
            let name = name.trim();
            // Nested components (and stray BEGIN/END) are not part of a contact card.
            if name.is_empty()
                || name.eq_ignore_ascii_case("BEGIN")
                || name.eq_ignore_ascii_case("END")
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            {
                return None;
            }
            properties.push(Property {
                name: name.to_ascii_uppercase(),
                params: params.to_owned(),
                value: value.to_owned(),
            });
        }
        Some(Vcard { properties })
    }

    fn values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.properties
            .iter()
            .filter(move |p| p.name == name)
            .map(|p| p.value.as_str())
    }

    /// sabre/vobject's validation issues, as texts (empty = valid).
    pub fn issues(&self) -> Vec<String> {
        let mut issues = Vec::new();
        let versions: Vec<&str> = self.values("VERSION").collect();
        match versions.as_slice() {
            [] => issues.push("VERSION MUST appear exactly once".to_owned()),
            [version] if !matches!(version.trim(), "2.1" | "3.0" | "4.0") => {
                issues.push("Only vcard version 4.0, 3.0 or 2.1 are supported".to_owned())
            }
            _ => {}
        }
        if self.values("FN").next().is_none() {
            issues.push(
                "The FN property must appear in the VCARD component at least once".to_owned(),
            );
        }
        for name in AT_MOST_ONCE {
            if self.values(name).count() > 1 {
                issues.push(format!("{name} MUST NOT appear more than once"));
            }
        }
        issues
    }

    /// The `UID` value, if any (non-empty).
    pub fn uid(&self) -> Option<&str> {
        self.values("UID").map(str::trim).find(|v| !v.is_empty())
    }

    /// Checks upstream's Vcard rule: parses, validates without any issue, has a UID.
    pub fn parse_valid(text: &str) -> Option<Vcard> {
        let card = Vcard::parse(text)?;
        (card.issues().is_empty() && card.uid().is_some()).then_some(card)
    }

    /// The stored text: `VERSION` first, properties in order, folded at 75 octets, `\n` line ends.
    pub fn serialize(&self) -> String {
        let mut out = String::from("BEGIN:VCARD\n");
        let ordered = self
            .properties
            .iter()
            .filter(|p| p.name == "VERSION")
            .chain(self.properties.iter().filter(|p| p.name != "VERSION"));
        for property in ordered {
            fold_into(
                &mut out,
                &format!("{}{}:{}", property.name, property.params, property.value),
            );
        }
        out.push_str("END:VCARD\n");
        out
    }
}

/// Appends `line` folded at 75 octets: each physical line holds at most 75 bytes (continuations include their
/// leading space) and never splits a UTF-8 character.
fn fold_into(out: &mut String, line: &str) {
    let mut rest = line;
    let mut first = true;
    loop {
        let budget = if first { 75 } else { 74 };
        if !first {
            out.push(' ');
        }
        if rest.len() <= budget {
            out.push_str(rest);
            out.push('\n');
            return;
        }
        let mut cut = budget;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push_str(&rest[..cut]);
        out.push('\n');
        rest = &rest[cut..];
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CARD: &str = "BEGIN:VCARD\r\nfn:Simon Perreault\r\nVERSION:4.0\r\nUID:urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6\r\nTEL;VALUE=uri;TYPE=\"voice,home\":tel:+1-418-262-6501\r\nEND:VCARD";

    #[test]
    fn round_trip() {
        let card = Vcard::parse_valid(CARD).expect("valid");
        assert_eq!(
            card.uid(),
            Some("urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6")
        );
        assert_eq!(
            card.serialize(),
            "BEGIN:VCARD\nVERSION:4.0\nFN:Simon Perreault\nUID:urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6\nTEL;VALUE=uri;TYPE=\"voice,home\":tel:+1-418-262-6501\nEND:VCARD\n"
        );
    }

    #[test]
    fn refusals() {
        assert!(Vcard::parse_valid("not a card").is_none());
        assert!(
            Vcard::parse_valid("BEGIN:VCARD\nVERSION:4.0\nFN:a\nEND:VCARD").is_none(),
            "no UID"
        );
        assert!(
            Vcard::parse_valid("BEGIN:VCARD\nFN:a\nUID:x\nEND:VCARD").is_none(),
            "no VERSION"
        );
        assert!(
            Vcard::parse_valid("BEGIN:VCARD\nVERSION:4.0\nUID:x\nEND:VCARD").is_none(),
            "no FN"
        );
        assert!(
            Vcard::parse_valid("BEGIN:VCARD\nVERSION:4.0\nFN:a\nUID:x\nUID:y\nEND:VCARD").is_none()
        );
    }

    #[test]
    fn folding() {
        let long = "é".repeat(60);
        let card = Vcard::parse_valid(&format!(
            "BEGIN:VCARD\nVERSION:4.0\nUID:u\nFN:{long}\nEND:VCARD"
        ))
        .unwrap();
        let text = card.serialize();
        assert!(text.lines().all(|l| l.len() <= 75));
        let unfolded = Vcard::parse(&text).unwrap();
        assert_eq!(unfolded, card);
    }
}
