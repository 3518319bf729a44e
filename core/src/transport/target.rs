//! Making a raw request-target acceptable to the `http` crate without changing what it names.
//!
//! Flexisip puts device ids such as `"<urn:uuid:…>"` raw in the path; the `http` crate refuses `<`, `>` and a
//! few other bytes. Percent-encoding exactly the refused bytes keeps the meaning: routes percent-decode path
//! segments, so the raw and the encoded forms reach the handler as the same text.

/// True for the path bytes the `http` crate accepts as they are.
fn path_byte_allowed(byte: u8) -> bool {
    matches!(byte, 0x21 | 0x24..=0x3B | 0x3D | 0x40..=0x5F | 0x61..=0x7A | 0x7C | 0x7E | b'"' | b'{' | b'}')
}

/// True for the query bytes the `http` crate accepts as they are.
fn query_byte_allowed(byte: u8) -> bool {
    matches!(byte, 0x21 | 0x24..=0x3B | 0x3D | 0x3F..=0x7E) && byte != b'#'
}

/// True when the target needs no rewriting (the common case: no allocation).
pub fn is_acceptable(target: &[u8]) -> bool {
    let mut in_query = false;
    target.iter().all(|&byte| {
        if !in_query && byte == b'?' {
            in_query = true;
            return true;
        }
        if in_query {
            query_byte_allowed(byte)
        } else {
            path_byte_allowed(byte)
        }
    })
}

/// Percent-encodes every byte of `target` the `http` crate would refuse (`%` itself is left alone).
pub fn encode(target: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(target.len() + 16);
    let mut in_query = false;
    for &byte in target {
        let allowed = if !in_query && byte == b'?' {
            in_query = true;
            true
        } else if in_query {
            query_byte_allowed(byte)
        } else {
            path_byte_allowed(byte)
        };
        if allowed {
            out.push(byte);
        } else {
            out.extend_from_slice(&[b'%', HEX[(byte >> 4) as usize], HEX[(byte & 15) as usize]]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_becomes_acceptable() {
        for byte in 0u8..=255 {
            for prefix in [&b"/api/x"[..], &b"/api/x?q="[..]] {
                let mut target = prefix.to_vec();
                target.push(byte);
                target.push(b'z');
                let encoded = encode(&target);
                assert!(is_acceptable(&encoded), "byte {byte:#x}");
                assert!(
                    http::uri::PathAndQuery::try_from(encoded.as_slice()).is_ok(),
                    "byte {byte:#x} after {prefix:?}"
                );
                let decoded = percent_encoding::percent_decode(&encoded).collect::<Vec<u8>>();
                let original = percent_encoding::percent_decode(&target).collect::<Vec<u8>>();
                assert_eq!(decoded, original, "byte {byte:#x}");
            }
        }
    }

    #[test]
    fn flexisip_device_path() {
        let raw =
            br#"/api/stats/calls/abc/devices/"<urn:uuid:5d2c8f1e-7a1b-4c3d-9e8f-0a1b2c3d4e5f>""#;
        assert!(!is_acceptable(raw));
        assert!(http::uri::PathAndQuery::try_from(&raw[..]).is_err());
        let encoded = encode(raw);
        assert_eq!(
            std::str::from_utf8(&encoded).unwrap(),
            r#"/api/stats/calls/abc/devices/"%3Curn:uuid:5d2c8f1e-7a1b-4c3d-9e8f-0a1b2c3d4e5f%3E""#
        );
        assert!(is_acceptable(b"/api/ping?page=2"));
    }
}
