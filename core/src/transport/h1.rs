//! HTTP/1.1 inbound rewriting: percent-encodes refused bytes of each request line's target.
//!
//! Message boundaries are tracked (Content-Length and chunked bodies) so that keep-alive and pipelined
//! requests are all seen; body bytes pass through untouched. Anything it does not understand is passed on
//! as is, for hyper to judge.

use bytes::BytesMut;

use super::rewrite::Rewrite;
use super::target;

/// Largest request head held back while looking for its end.
const MAX_HEAD: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Head,
    Body(u64),
    ChunkSize,
    ChunkData(u64),
    Trailers,
    /// Gave up understanding the stream (oversized head, CONNECT…): everything passes through.
    Passthrough,
}

/// The HTTP/1.1 rewriter.
pub struct H1 {
    state: State,
    pending: Vec<u8>,
}

impl Default for H1 {
    fn default() -> Self {
        H1 {
            state: State::Head,
            pending: Vec::new(),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Length of the head at the start of `buffer` (up to and including its empty line), if complete. Bare LF
/// line endings count, as hyper's parser (httparse) accepts them.
fn head_end(buffer: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(newline) = buffer[from..].iter().position(|b| *b == b'\n') {
        let at = from + newline;
        let rest = &buffer[at + 1..];
        if rest.starts_with(b"\n") {
            return Some(at + 2);
        }
        if rest.starts_with(b"\r\n") {
            return Some(at + 3);
        }
        from = at + 1;
    }
    None
}

/// Rewrites one request head; returns it and the state for what follows it.
fn process_head(head: &[u8]) -> (Vec<u8>, State) {
    let line_end = head.iter().position(|b| *b == b'\n').unwrap_or(head.len());
    let request_line = &head[..line_end];
    let request_line = request_line.strip_suffix(b"\r").unwrap_or(request_line);
    let line_end = request_line.len();
    let mut rewritten = Vec::with_capacity(head.len() + 16);
    let parts: Vec<&[u8]> = request_line.splitn(3, |b| *b == b' ').collect();
    let mut next = State::Head;
    if parts.len() == 3 && !target::is_acceptable(parts[1]) {
        rewritten.extend_from_slice(parts[0]);
        rewritten.push(b' ');
        rewritten.extend_from_slice(&target::encode(parts[1]));
        rewritten.push(b' ');
        rewritten.extend_from_slice(parts[2]);
    } else {
        rewritten.extend_from_slice(request_line);
    }
    if parts
        .first()
        .is_some_and(|m| m.eq_ignore_ascii_case(b"CONNECT"))
    {
        next = State::Passthrough;
    }
    rewritten.extend_from_slice(&head[line_end..]);

    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    for line in head[line_end..].split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = &line[..colon];
        let value = String::from_utf8_lossy(&line[colon + 1..])
            .trim()
            .to_ascii_lowercase();
        if name.eq_ignore_ascii_case(b"content-length") {
            content_length = value.parse().ok();
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = value
                .split(',')
                .next_back()
                .is_some_and(|c| c.trim() == "chunked");
        }
    }
    if next == State::Head {
        next = if chunked {
            State::ChunkSize
        } else {
            match content_length {
                Some(n) if n > 0 => State::Body(n),
                _ => State::Head,
            }
        };
    }
    (rewritten, next)
}

impl Rewrite for H1 {
    fn feed(&mut self, input: &[u8], out: &mut BytesMut) {
        if self.state == State::Passthrough {
            out.extend_from_slice(input);
            return;
        }
        self.pending.extend_from_slice(input);
        let mut pos = 0;
        loop {
            let available = &self.pending[pos..];
            if available.is_empty() {
                break;
            }
            match self.state {
                State::Passthrough => {
                    out.extend_from_slice(available);
                    pos = self.pending.len();
                }
                State::Body(left) | State::ChunkData(left) => {
                    let n = (left.min(available.len() as u64)) as usize;
                    out.extend_from_slice(&available[..n]);
                    pos += n;
                    let left = left - n as u64;
                    self.state = match (self.state, left) {
                        (State::Body(_), 0) => State::Head,
                        (State::Body(_), l) => State::Body(l),
                        (_, 0) => State::ChunkSize,
                        (_, l) => State::ChunkData(l),
                    };
                }
                State::Head => {
                    // Empty lines between requests are tolerated by servers: pass them on.
                    let empty = if available.starts_with(b"\r\n") {
                        2
                    } else {
                        usize::from(available.starts_with(b"\n"))
                    };
                    if empty > 0 {
                        out.extend_from_slice(&available[..empty]);
                        pos += empty;
                        continue;
                    }
                    match head_end(available) {
                        Some(end) => {
                            let (head, next) = process_head(&available[..end]);
                            out.extend_from_slice(&head);
                            pos += end;
                            self.state = next;
                        }
                        None if available.len() > MAX_HEAD => self.state = State::Passthrough,
                        None => break,
                    }
                }
                State::ChunkSize | State::Trailers => match find(available, b"\r\n") {
                    Some(end) => {
                        let line = &available[..end];
                        if self.state == State::ChunkSize {
                            let size_text = String::from_utf8_lossy(line);
                            let size_text = size_text.split(';').next().unwrap_or("").trim();
                            self.state = match u64::from_str_radix(size_text, 16) {
                                Ok(0) => State::Trailers,
                                Ok(size) => State::ChunkData(size + 2),
                                Err(_) => State::Passthrough,
                            };
                        } else if line.is_empty() {
                            self.state = State::Head;
                        }
                        out.extend_from_slice(&available[..end + 2]);
                        pos += end + 2;
                    }
                    None if available.len() > MAX_HEAD => self.state = State::Passthrough,
                    None => break,
                },
            }
        }
        self.pending.drain(..pos);
    }

    fn finish(&mut self, out: &mut BytesMut) {
        out.extend_from_slice(&self.pending);
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> Vec<u8> {
        let mut rewriter = H1::default();
        let mut out = BytesMut::new();
        for chunk in chunks {
            rewriter.feed(chunk, &mut out);
        }
        rewriter.finish(&mut out);
        out.to_vec()
    }

    #[test]
    fn pipelined_requests_with_bodies() {
        let input: &[u8] = b"PATCH /d/\"<x>\" HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\n{\"<\":\">\"}GET /e/<y> HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n<<>\r\n0\r\n\r\nGET /ok HTTP/1.1\r\n\r\n";
        let expected: &[u8] = b"PATCH /d/\"%3Cx%3E\" HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\n{\"<\":\">\"}GET /e/%3Cy%3E HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n<<>\r\n0\r\n\r\nGET /ok HTTP/1.1\r\n\r\n";
        assert_eq!(run(&[input]), expected);
        // Byte by byte gives the same result.
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(&bytes), expected);
    }

    #[test]
    fn bare_line_feeds_and_empty_lines() {
        let input: &[u8] =
            b"\r\n\nGET /a/<b> HTTP/1.1\nHost: h\nContent-Length: 3\n\n<>xGET /c/<d> HTTP/1.1\n\n";
        let expected: &[u8] =
            b"\r\n\nGET /a/%3Cb%3E HTTP/1.1\nHost: h\nContent-Length: 3\n\n<>xGET /c/%3Cd%3E HTTP/1.1\n\n";
        assert_eq!(run(&[input]), expected);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(&bytes), expected);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nrest"), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r"), None);
    }
}
