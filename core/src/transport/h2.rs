//! HTTP/2 inbound rewriting: every header block is decoded and re-encoded so that `:path` can be made
//! acceptable to the `http` crate.
//!
//! Our HPACK decoder follows the client's dynamic table across the whole connection; blocks are re-encoded
//! as literals without indexing, so the server's decoder never holds a dynamic table that could drift from
//! the client's. Frames other than HEADERS/CONTINUATION pass through byte for byte. Re-encoded blocks larger
//! than the default frame size are split into CONTINUATION frames; padding is dropped.

use bytes::BytesMut;

use super::rewrite::Rewrite;
use super::target;

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Largest frame we buffer; bigger ones switch the connection to pass-through (the server refuses them).
const MAX_BUFFERED_FRAME: usize = 1 << 20;
/// Frame payload size the server accepts by default (SETTINGS_MAX_FRAME_SIZE).
const MAX_FRAME_PAYLOAD: usize = 16_384;

const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

struct PendingBlock {
    stream_id: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
}

/// The HTTP/2 rewriter.
pub struct H2 {
    preface_left: usize,
    buffer: Vec<u8>,
    decoder: hpack::Decoder<'static>,
    block: Option<PendingBlock>,
    passthrough: bool,
}

impl Default for H2 {
    fn default() -> Self {
        H2 {
            preface_left: PREFACE.len(),
            buffer: Vec::new(),
            decoder: hpack::Decoder::new(),
            block: None,
            passthrough: false,
        }
    }
}

/// HPACK integer with an `prefix_bits` prefix, first byte ORed with `first`.
fn encode_integer(value: usize, prefix_bits: u8, first: u8, out: &mut Vec<u8>) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// Encodes headers as "literal without indexing, new name", no Huffman: nothing enters the dynamic table.
pub fn encode_literal_block(headers: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum());
    for (name, value) in headers {
        out.push(0x00);
        encode_integer(name.len(), 7, 0, &mut out);
        out.extend_from_slice(name);
        encode_integer(value.len(), 7, 0, &mut out);
        out.extend_from_slice(value);
    }
    out
}

fn frame_header(length: usize, kind: u8, flags: u8, stream_id: u32, out: &mut BytesMut) {
    out.extend_from_slice(&[
        (length >> 16) as u8,
        (length >> 8) as u8,
        length as u8,
        kind,
        flags,
    ]);
    out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
}

impl H2 {
    fn emit_block(&mut self, block: PendingBlock, out: &mut BytesMut) {
        let fragment = match self.decoder.decode(&block.fragment) {
            Ok(mut headers) => {
                for (name, value) in headers.iter_mut() {
                    if name.as_slice() == b":path" && !target::is_acceptable(value) {
                        *value = target::encode(value);
                    }
                }
                encode_literal_block(&headers)
            }
            Err(error) => {
                // Our table may now differ from the client's: hand the block over unchanged (the server's
                // decoder will refuse it the same way) and stop interpreting this connection.
                tracing::debug!(
                    ?error,
                    "undecodable header block; passing the connection through"
                );
                self.passthrough = true;
                block.fragment
            }
        };
        let priority_len = if block.priority.is_some() { 5 } else { 0 };
        let first_room = MAX_FRAME_PAYLOAD - priority_len;
        let (first, mut rest) = fragment.split_at(fragment.len().min(first_room));
        let mut flags = if block.end_stream { END_STREAM } else { 0 };
        if block.priority.is_some() {
            flags |= PRIORITY;
        }
        if rest.is_empty() {
            flags |= END_HEADERS;
        }
        frame_header(
            first.len() + priority_len,
            HEADERS,
            flags,
            block.stream_id,
            out,
        );
        if let Some(priority) = block.priority {
            out.extend_from_slice(&priority);
        }
        out.extend_from_slice(first);
        while !rest.is_empty() {
            let (chunk, remaining) = rest.split_at(rest.len().min(MAX_FRAME_PAYLOAD));
            let flags = if remaining.is_empty() { END_HEADERS } else { 0 };
            frame_header(chunk.len(), CONTINUATION, flags, block.stream_id, out);
            out.extend_from_slice(chunk);
            rest = remaining;
        }
    }

    /// Handles one complete frame; false when it could not be interpreted (then it was passed on as is).
    fn frame(&mut self, frame: &[u8], out: &mut BytesMut) {
        let kind = frame[3];
        let flags = frame[4];
        let stream_id = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
        let payload = &frame[9..];
        match kind {
            HEADERS => {
                let mut body = payload;
                let mut padding = 0usize;
                if flags & PADDED != 0 {
                    let Some((&pad, rest)) = body.split_first() else {
                        return out.extend_from_slice(frame);
                    };
                    padding = pad as usize;
                    body = rest;
                }
                let mut priority = None;
                if flags & PRIORITY != 0 {
                    if body.len() < 5 {
                        return out.extend_from_slice(frame);
                    }
                    let mut p = [0u8; 5];
                    p.copy_from_slice(&body[..5]);
                    priority = Some(p);
                    body = &body[5..];
                }
                if padding > body.len() {
                    return out.extend_from_slice(frame);
                }
                let block = PendingBlock {
                    stream_id,
                    end_stream: flags & END_STREAM != 0,
                    priority,
                    fragment: body[..body.len() - padding].to_vec(),
                };
                if flags & END_HEADERS != 0 {
                    self.emit_block(block, out);
                } else {
                    self.block = Some(block);
                }
            }
            CONTINUATION => match self.block.take() {
                Some(mut block) if block.stream_id == stream_id => {
                    block.fragment.extend_from_slice(payload);
                    if flags & END_HEADERS != 0 {
                        self.emit_block(block, out);
                    } else {
                        self.block = Some(block);
                    }
                }
                other => {
                    self.block = other;
                    out.extend_from_slice(frame);
                }
            },
            _ => out.extend_from_slice(frame),
        }
    }
}

impl Rewrite for H2 {
    fn feed(&mut self, input: &[u8], out: &mut BytesMut) {
        if self.passthrough {
            out.extend_from_slice(input);
            return;
        }
        self.buffer.extend_from_slice(input);
        let mut pos = 0;
        if self.preface_left > 0 {
            let n = self.preface_left.min(self.buffer.len());
            out.extend_from_slice(&self.buffer[..n]);
            self.preface_left -= n;
            pos = n;
        }
        while !self.passthrough {
            let available = &self.buffer[pos..];
            if available.len() < 9 {
                break;
            }
            let length = ((available[0] as usize) << 16)
                | ((available[1] as usize) << 8)
                | available[2] as usize;
            if length > MAX_BUFFERED_FRAME {
                self.passthrough = true;
                break;
            }
            if available.len() < 9 + length {
                break;
            }
            let frame = available[..9 + length].to_vec();
            pos += 9 + length;
            self.frame(&frame, out);
        }
        if self.passthrough {
            out.extend_from_slice(&self.buffer[pos..]);
            pos = self.buffer.len();
        }
        self.buffer.drain(..pos);
    }

    fn finish(&mut self, out: &mut BytesMut) {
        out.extend_from_slice(&self.buffer);
        self.buffer.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers_frame(block: &[u8], flags: u8, stream: u32) -> Vec<u8> {
        let mut out = BytesMut::new();
        frame_header(block.len(), HEADERS, flags, stream, &mut out);
        out.extend_from_slice(block);
        out.to_vec()
    }

    fn decode_all(bytes: &[u8]) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut decoder = hpack::Decoder::new();
        let mut blocks = Vec::new();
        let mut pos = PREFACE.len();
        let mut block = Vec::new();
        while pos < bytes.len() {
            let length = ((bytes[pos] as usize) << 16)
                | ((bytes[pos + 1] as usize) << 8)
                | bytes[pos + 2] as usize;
            let (kind, flags) = (bytes[pos + 3], bytes[pos + 4]);
            assert!(length <= MAX_FRAME_PAYLOAD);
            if kind == HEADERS || kind == CONTINUATION {
                let skip = if kind == HEADERS && flags & PRIORITY != 0 {
                    5
                } else {
                    0
                };
                block.extend_from_slice(&bytes[pos + 9 + skip..pos + 9 + length]);
                if flags & END_HEADERS != 0 {
                    blocks.push(decoder.decode(&block).unwrap());
                    block.clear();
                }
            }
            pos += 9 + length;
        }
        blocks
    }

    #[test]
    fn paths_rewritten_and_dynamic_table_followed() {
        let mut client = hpack::Encoder::new();
        let raw_path: &[u8] = b"/api/stats/calls/c/devices/\"<urn:uuid:1>\"";
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"PATCH"),
            (b":scheme", b"https"),
            (b":authority", b"flexiapi.example.org"),
            (b":path", raw_path),
            (b"x-api-key", b"secretsecret"),
        ];
        let first = client.encode(headers.clone());
        let second = client.encode(headers.clone()); // indexed references to the dynamic table
        assert!(second.len() < first.len());
        let mut input = PREFACE.to_vec();
        input.extend(headers_frame(&first, END_HEADERS, 1));
        // The second block split over HEADERS + CONTINUATION, with padding and priority on the HEADERS frame.
        let (a, b) = second.split_at(3);
        let mut padded = vec![2u8];
        padded.extend_from_slice(&[0, 0, 0, 0, 16]);
        padded.extend_from_slice(a);
        padded.extend_from_slice(&[0, 0]);
        input.extend(headers_frame(&padded, PADDED | PRIORITY | END_STREAM, 3));
        let mut continuation = BytesMut::new();
        frame_header(b.len(), CONTINUATION, END_HEADERS, 3, &mut continuation);
        continuation.extend_from_slice(b);
        input.extend(continuation.to_vec());
        // A DATA frame passes through.
        let mut data = BytesMut::new();
        frame_header(2, 0x0, END_STREAM, 1, &mut data);
        data.extend_from_slice(b"{}");
        input.extend(data.to_vec());

        for chunk_size in [1usize, 7, 4096] {
            let mut rewriter = H2::default();
            let mut out = BytesMut::new();
            for chunk in input.chunks(chunk_size) {
                rewriter.feed(chunk, &mut out);
            }
            assert!(out.starts_with(PREFACE));
            assert!(out.ends_with(b"{}"));
            let blocks = decode_all(&out);
            assert_eq!(blocks.len(), 2);
            for block in blocks {
                let path = block.iter().find(|(n, _)| n == b":path").unwrap();
                assert_eq!(
                    path.1,
                    b"/api/stats/calls/c/devices/\"%3Curn:uuid:1%3E\"".to_vec()
                );
                assert_eq!(block.len(), 5);
            }
        }
    }

    #[test]
    fn large_blocks_are_split() {
        let big = vec![b'a'; 40_000];
        let headers = vec![
            (b":path".to_vec(), b"/<x>".to_vec()),
            (b"x-big".to_vec(), big),
        ];
        let mut client = hpack::Encoder::new();
        let encoded = client.encode(headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
        let mut input = PREFACE.to_vec();
        // Sent by the client in 16 KiB pieces.
        let mut chunks = encoded.chunks(MAX_FRAME_PAYLOAD).peekable();
        let mut kind = HEADERS;
        while let Some(chunk) = chunks.next() {
            let flags = if chunks.peek().is_none() {
                END_HEADERS
            } else {
                0
            };
            let mut frame = BytesMut::new();
            frame_header(chunk.len(), kind, flags, 1, &mut frame);
            frame.extend_from_slice(chunk);
            input.extend(frame.to_vec());
            kind = CONTINUATION;
        }
        let mut rewriter = H2::default();
        let mut out = BytesMut::new();
        rewriter.feed(&input, &mut out);
        let blocks = decode_all(&out);
        assert_eq!(blocks[0][0].1, b"/%3Cx%3E".to_vec());
        assert_eq!(blocks[0][1].1.len(), 40_000);
    }
}
