//! `GET /api/accounts/me`, authenticated the two ways clients do: an API key, or DIGEST (RFC 7616) where
//! each connection answers one challenge and then reuses its nonce with an increasing `nc`, as SIP clients do.

use sha2::{Digest as _, Sha256};

use crate::client::{request, Answer};
use crate::load::{Script, Verdict};

const PATH: &str = "/api/accounts/me";

/// Requests authenticated by `x-api-key`.
pub struct ApiKey {
    host: String,
    key: String,
}

impl ApiKey {
    /// With `key` on `host`.
    pub fn new(host: &str, key: &str) -> ApiKey {
        ApiKey {
            host: host.to_owned(),
            key: key.to_owned(),
        }
    }
}

impl Script for ApiKey {
    fn next(&mut self, out: &mut Vec<u8>) {
        request(
            "GET",
            &self.host,
            PATH,
            &format!("x-api-key: {}\r\n", self.key),
            "",
            out,
        );
    }

    fn answered(&mut self, answer: &Answer<'_>) -> Verdict {
        if answer.status == 200 {
            Verdict::Served
        } else {
            Verdict::Wrong
        }
    }
}

/// A DIGEST hash algorithm (the admin of `flexiapi accounts create-admin` has a SHA-256 hash).
#[derive(Clone, Copy, Debug)]
pub enum Algorithm {
    /// SHA-256.
    Sha256,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "SHA-256",
        }
    }

    fn hex(self, data: &str) -> String {
        let bytes = match self {
            Algorithm::Sha256 => Sha256::digest(data.as_bytes()).to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

struct Challenge {
    realm: String,
    nonce: String,
    opaque: String,
}

fn param(line: &str, name: &str) -> Option<String> {
    let start = line.find(&format!("{name}="))? + name.len() + 1;
    let rest = &line[start..];
    Some(match rest.strip_prefix('"') {
        Some(quoted) => quoted[..quoted.find('"')?].to_owned(),
        None => rest.split(',').next()?.trim().to_owned(),
    })
}

/// Requests authenticated by DIGEST with one algorithm.
pub struct Digest {
    host: String,
    username: String,
    domain: String,
    password: String,
    algorithm: Algorithm,
    challenge: Option<Challenge>,
    nc: u32,
    /// Challenges answered (one per connection unless the server asks again).
    challenges: u64,
}

impl Digest {
    /// As `username@domain` with `password`.
    pub fn new(
        host: &str,
        username: &str,
        domain: &str,
        password: &str,
        algorithm: Algorithm,
    ) -> Digest {
        Digest {
            host: host.to_owned(),
            username: username.to_owned(),
            domain: domain.to_owned(),
            password: password.to_owned(),
            algorithm,
            challenge: None,
            nc: 0,
            challenges: 0,
        }
    }
}

impl Script for Digest {
    fn next(&mut self, out: &mut Vec<u8>) {
        let from = format!("from: sip:{}@{}\r\n", self.username, self.domain);
        let Some(challenge) = &self.challenge else {
            request("GET", &self.host, PATH, &from, "", out);
            return;
        };
        self.nc += 1;
        let nc = format!("{:08x}", self.nc);
        let cnonce = format!("{:016x}", self.nc as u64 * 0x9e37_79b9);
        let a = self.algorithm;
        let ha1 = a.hex(&format!(
            "{}:{}:{}",
            self.username, challenge.realm, self.password
        ));
        let ha2 = a.hex(&format!("GET:{PATH}"));
        let response = a.hex(&format!(
            "{ha1}:{}:{nc}:{cnonce}:auth:{ha2}",
            challenge.nonce
        ));
        let authorization = format!(
            "{from}authorization: Digest username=\"{}\",realm=\"{}\",nonce=\"{}\",uri=\"{PATH}\",algorithm={},qop=auth,nc={nc},cnonce=\"{cnonce}\",response=\"{response}\",opaque=\"{}\"\r\n",
            self.username,
            challenge.realm,
            challenge.nonce,
            a.name(),
            challenge.opaque
        );
        request("GET", &self.host, PATH, &authorization, "", out);
    }

    /// A 401 carrying a challenge for our algorithm is expected (first request, or nonce expired); it is
    /// answered on the next request and not counted as a served request.
    fn answered(&mut self, answer: &Answer<'_>) -> Verdict {
        if answer.status == 200 {
            return Verdict::Served;
        }
        if answer.status == 401 {
            let wanted = format!("algorithm={}", self.algorithm.name());
            let line = answer
                .headers("www-authenticate")
                .into_iter()
                .find(|line| line.contains(&wanted));
            if let Some(line) = line {
                if let (Some(realm), Some(nonce), Some(opaque)) = (
                    param(&line, "realm"),
                    param(&line, "nonce"),
                    param(&line, "opaque"),
                ) {
                    self.challenge = Some(Challenge {
                        realm,
                        nonce,
                        opaque,
                    });
                    self.nc = 0;
                    self.challenges += 1;
                    return Verdict::Handshake;
                }
            }
        }
        Verdict::Wrong
    }

    fn tally(&self) -> std::collections::BTreeMap<&'static str, u64> {
        [("challenges", self.challenges)].into()
    }
}
