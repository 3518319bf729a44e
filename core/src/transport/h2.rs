//! HTTP/2 inbound rewriting: every header block is decoded and re-encoded so that `:path` can be made
//! acceptable to the `http` crate.
//!
//! Our HPACK decoder follows the client's dynamic table across the whole connection; blocks are re-encoded
//! as literals without indexing, so the server's decoder never holds a dynamic table that could drift from
//! the client's. Frames other than HEADERS/CONTINUATION pass through byte for byte. Re-encoded blocks larger
//! than the default frame size are split into CONTINUATION frames; padding is dropped.
//!
//! Input we cannot follow (an undecodable block, an oversized frame or header block) switches the connection
//! to pass-through: hyper's h2 then sees the client's bytes as they are and applies its own limits and
//! errors. The decoder is `loona-hpack` rather than `hpack` 0.3, which panics on a truncated table size
//! update — untrusted input must not be able to panic the connection task.

use bytes::BytesMut;

use super::rewrite::Rewrite;
use super::target;

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Largest frame we buffer; bigger ones switch the connection to pass-through (the server refuses them).
const MAX_BUFFERED_FRAME: usize = 1 << 20;
/// Frame payload size the server accepts by default (SETTINGS_MAX_FRAME_SIZE).
const MAX_FRAME_PAYLOAD: usize = 16_384;
/// Largest header block (HEADERS + CONTINUATION fragments) we collect before decoding. Without a bound, a
/// CONTINUATION flood would grow our buffer while h2's own guard never sees the frames. Even with the
/// shortest Huffman codes this much encodes more than the server's header list limit (256 KiB).
const MAX_HEADER_BLOCK: usize = 1 << 20;
/// The dynamic table size the server lets the client use (SETTINGS_HEADER_TABLE_SIZE: hyper keeps the
/// protocol default and so never announces another).
const HEADER_TABLE_SIZE: usize = 4_096;

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
    decoder: loona_hpack::Decoder<'static>,
    block: Option<PendingBlock>,
    passthrough: bool,
}

impl Default for H2 {
    fn default() -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(HEADER_TABLE_SIZE);
        H2 {
            preface_left: PREFACE.len(),
            buffer: Vec::new(),
            decoder,
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

/// Frames a header block fragment as HEADERS (+ CONTINUATION when it exceeds one frame); END_HEADERS is set
/// on the last frame only when `end_headers`.
fn write_block(block: &PendingBlock, fragment: &[u8], end_headers: bool, out: &mut BytesMut) {
    let priority_len = if block.priority.is_some() { 5 } else { 0 };
    let first_room = MAX_FRAME_PAYLOAD - priority_len;
    let (first, mut rest) = fragment.split_at(fragment.len().min(first_room));
    let mut flags = if block.end_stream { END_STREAM } else { 0 };
    if block.priority.is_some() {
        flags |= PRIORITY;
    }
    if rest.is_empty() && end_headers {
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
        let flags = if remaining.is_empty() && end_headers {
            END_HEADERS
        } else {
            0
        };
        frame_header(chunk.len(), CONTINUATION, flags, block.stream_id, out);
        out.extend_from_slice(chunk);
        rest = remaining;
    }
}

impl H2 {
    /// Decodes a complete block, rewrites `:path` and frames the re-encoded block.
    fn emit_block(&mut self, block: PendingBlock, out: &mut BytesMut) {
        match self.decoder.decode(&block.fragment) {
            Ok(mut headers) => {
                for (name, value) in headers.iter_mut() {
                    if name.as_slice() == b":path" && !target::is_acceptable(value) {
                        *value = target::encode(value);
                    }
                }
                write_block(&block, &encode_literal_block(&headers), true, out);
            }
            Err(error) => {
                // Our table may now differ from the client's: hand the block over unchanged (the server's
                // decoder will refuse it the same way) and stop interpreting this connection.
                tracing::debug!(
                    ?error,
                    "undecodable header block; passing the connection through"
                );
                write_block(&block, &block.fragment, true, out);
                self.passthrough = true;
            }
        }
    }

    /// Stops interpreting the connection: a block still being collected goes out as received so far
    /// (without END_HEADERS, its remaining frames follow untouched), then everything passes through.
    fn give_up(&mut self, out: &mut BytesMut) {
        if let Some(block) = self.block.take() {
            write_block(&block, &block.fragment, false, out);
        }
        self.passthrough = true;
    }

    /// Handles one complete frame (9-byte header included).
    fn frame(&mut self, frame: &[u8], out: &mut BytesMut) {
        let kind = frame[3];
        let flags = frame[4];
        let stream_id = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
        let payload = &frame[9..];
        if self.block.is_some() && kind != CONTINUATION {
            // Only CONTINUATION may follow an unfinished block (RFC 9113 §6.10): let h2 report the error.
            self.give_up(out);
            return out.extend_from_slice(frame);
        }
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
                        if self
                            .block
                            .as_ref()
                            .is_some_and(|b| b.fragment.len() > MAX_HEADER_BLOCK)
                        {
                            self.give_up(out);
                        }
                    }
                }
                other => {
                    self.block = other;
                    self.give_up(out);
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
        // Taken out of `self` so frames can be handled in place, without copying each one.
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.extend_from_slice(input);
        let mut pos = 0;
        if self.preface_left > 0 {
            let n = self.preface_left.min(buffer.len());
            out.extend_from_slice(&buffer[..n]);
            self.preface_left -= n;
            pos = n;
        }
        while !self.passthrough {
            let available = &buffer[pos..];
            if available.len() < 9 {
                break;
            }
            let length = ((available[0] as usize) << 16)
                | ((available[1] as usize) << 8)
                | available[2] as usize;
            if length > MAX_BUFFERED_FRAME {
                self.give_up(out);
                break;
            }
            if available.len() < 9 + length {
                break;
            }
            self.frame(&available[..9 + length], out);
            pos += 9 + length;
        }
        if self.passthrough {
            out.extend_from_slice(&buffer[pos..]);
            pos = buffer.len();
        }
        buffer.drain(..pos);
        self.buffer = buffer;
    }

    fn finish(&mut self, out: &mut BytesMut) {
        if !self.passthrough {
            self.give_up(out);
        }
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
        let headers = [
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

    #[test]
    fn malformed_blocks_do_not_panic() {
        // A truncated dynamic table size update, an out-of-range index, a truncated literal.
        for block in [&[0x3fu8][..], &[0xbf, 0x7f][..], &[0x40, 0x05, b'a']] {
            let mut input = PREFACE.to_vec();
            input.extend(headers_frame(block, END_HEADERS | END_STREAM, 1));
            let mut rewriter = H2::default();
            let mut out = BytesMut::new();
            rewriter.feed(&input, &mut out);
            // Handed over unchanged, for the server to refuse.
            assert_eq!(&out[..], &input[..]);
        }
    }

    fn continuation_frame(fragment: &[u8], flags: u8, stream: u32) -> Vec<u8> {
        let mut out = BytesMut::new();
        frame_header(fragment.len(), CONTINUATION, flags, stream, &mut out);
        out.extend_from_slice(fragment);
        out.to_vec()
    }

    #[test]
    fn continuation_flood_is_bounded() {
        let mut rewriter = H2::default();
        let mut out = BytesMut::new();
        let mut input = PREFACE.to_vec();
        input.extend(headers_frame(&[0x82], 0, 1));
        rewriter.feed(&input, &mut out);
        let piece = continuation_frame(&[0x40; MAX_FRAME_PAYLOAD], 0, 1);
        for _ in 0..(MAX_HEADER_BLOCK / MAX_FRAME_PAYLOAD + 10) {
            rewriter.feed(&piece, &mut out);
        }
        // We stopped collecting: our buffer is empty and the frames went on to h2, which limits them itself.
        assert!(rewriter.passthrough);
        assert!(rewriter.block.is_none());
        assert!(rewriter.buffer.is_empty());
        assert!(out.len() > MAX_HEADER_BLOCK);
        let before = out.len();
        rewriter.feed(&piece, &mut out);
        assert_eq!(&out[before..], &piece[..]);
    }

    #[test]
    fn unfinished_block_interrupted_is_handed_over() {
        // HEADERS without END_HEADERS, then a DATA frame: a protocol error h2 must see for itself.
        let mut input = PREFACE.to_vec();
        input.extend(headers_frame(&[0x82, 0x86], 0, 1));
        let mut data = BytesMut::new();
        frame_header(2, 0x0, END_STREAM, 1, &mut data);
        data.extend_from_slice(b"{}");
        input.extend(data.to_vec());
        let mut rewriter = H2::default();
        let mut out = BytesMut::new();
        rewriter.feed(&input, &mut out);
        assert_eq!(&out[..], &input[..]);
        assert!(rewriter.passthrough);
    }

    #[test]
    fn dynamic_table_size_updates_are_followed() {
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"GET"),
            (b":path", b"/<a>"),
            (b"x-long", b"0123456789"),
        ];
        // Shrinking the table to nothing and back (both updates at the start of a block) evicts every entry.
        let mut reset = Vec::new();
        encode_integer(0, 5, 0x20, &mut reset);
        encode_integer(HEADER_TABLE_SIZE, 5, 0x20, &mut reset);

        // A client that resets its table and starts afresh: every block decodes.
        let mut old = hpack::Encoder::new();
        let mut fresh = hpack::Encoder::new();
        let mut second = reset.clone();
        second.extend(fresh.encode(headers.clone()));
        let mut input = PREFACE.to_vec();
        input.extend(headers_frame(&old.encode(headers.clone()), END_HEADERS, 1));
        input.extend(headers_frame(&second, END_HEADERS, 3));
        input.extend(headers_frame(
            &fresh.encode(headers.clone()),
            END_HEADERS,
            5,
        ));
        let mut rewriter = H2::default();
        let mut out = BytesMut::new();
        rewriter.feed(&input, &mut out);
        assert!(!rewriter.passthrough);
        let blocks = decode_all(&out);
        assert_eq!(blocks.len(), 3);
        for block in blocks {
            assert_eq!(block[1].1, b"/%3Ca%3E".to_vec());
            assert_eq!(block[2].1, b"0123456789".to_vec());
        }

        // Referring to an entry evicted by the reset is an error: our table really was emptied.
        let mut rewriter = H2::default();
        let mut out = BytesMut::new();
        rewriter.feed(PREFACE, &mut out);
        let mut warm = hpack::Encoder::new();
        let block = warm.encode(headers.clone());
        rewriter.feed(&headers_frame(&block, END_HEADERS, 1), &mut out);
        assert!(!rewriter.passthrough);
        let mut stale = reset.clone();
        stale.extend(warm.encode(headers.clone()));
        let frame = headers_frame(&stale, END_HEADERS, 3);
        let mut second = BytesMut::new();
        rewriter.feed(&frame, &mut second);
        assert!(rewriter.passthrough);
        assert_eq!(&second[..], &frame[..]);

        // A size above what the server allows (4096) is the client's error: handed over for h2 to refuse.
        let mut rewriter = H2::default();
        let mut out = BytesMut::new();
        let mut input = PREFACE.to_vec();
        let mut too_big = Vec::new();
        encode_integer(8192, 5, 0x20, &mut too_big);
        too_big.push(0x82);
        input.extend(headers_frame(&too_big, END_HEADERS, 1));
        rewriter.feed(&input, &mut out);
        assert_eq!(&out[..], &input[..]);
        assert!(rewriter.passthrough);
    }
}
