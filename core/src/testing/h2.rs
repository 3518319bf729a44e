//! A minimal HTTP/2 client that sends request paths byte for byte, as the Flexisip client does (raw `<`, `>`,
//! `"` in device ids). Off-the-shelf clients refuse to send such paths, so tests speak the frames themselves:
//! preface, SETTINGS, HEADERS (HPACK with a dynamic table, like a real client), DATA; it answers SETTINGS and
//! PING and collects each stream's status and body.

use std::collections::HashMap;
use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What came back on one stream.
#[derive(Debug, Default, Clone)]
pub struct H2Response {
    /// `:status`.
    pub status: u16,
    /// Response headers other than pseudo-headers.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl H2Response {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Default)]
struct StreamState {
    response: H2Response,
    done: bool,
    reset: Option<u32>,
}

/// One HTTP/2 connection.
pub struct RawH2<S> {
    stream: S,
    encoder: hpack::Encoder<'static>,
    decoder: hpack::Decoder<'static>,
    next_stream_id: u32,
    streams: HashMap<u32, StreamState>,
    goaway: bool,
    block: Vec<u8>,
}

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;

impl<S: AsyncRead + AsyncWrite + Unpin> RawH2<S> {
    /// Sends the preface and our SETTINGS.
    pub async fn handshake(mut stream: S) -> io::Result<Self> {
        stream
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await?;
        // SETTINGS: MAX_CONCURRENT_STREAMS = 1000, as Flexisip announces.
        let settings = [0x00, 0x03, 0x00, 0x00, 0x03, 0xe8];
        write_frame(&mut stream, SETTINGS, 0, 0, &settings).await?;
        // A large connection window so bodies are never stalled.
        write_frame(
            &mut stream,
            WINDOW_UPDATE,
            0,
            0,
            &(1u32 << 30).to_be_bytes(),
        )
        .await?;
        Ok(RawH2 {
            stream,
            encoder: hpack::Encoder::new(),
            decoder: hpack::Decoder::new(),
            next_stream_id: 1,
            streams: HashMap::new(),
            goaway: false,
            block: Vec::new(),
        })
    }

    /// True once the server sent GOAWAY.
    pub fn saw_goaway(&self) -> bool {
        self.goaway
    }

    /// Opens a stream: `path` goes out exactly as given. Returns the stream id.
    pub async fn send(
        &mut self,
        method: &str,
        authority: &str,
        path: &[u8],
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<u32> {
        let id = self.next_stream_id;
        self.next_stream_id += 2;
        let mut all: Vec<(&[u8], &[u8])> = vec![
            (b":method", method.as_bytes()),
            (b":scheme", b"https"),
            (b":authority", authority.as_bytes()),
            (b":path", path),
        ];
        let length = body.len().to_string();
        for (name, value) in headers {
            all.push((name.as_bytes(), value.as_bytes()));
        }
        if !body.is_empty() {
            all.push((b"content-length", length.as_bytes()));
        }
        let block = self.encoder.encode(all);
        let flags = 0x4 | if body.is_empty() { 0x1 } else { 0 };
        write_frame(&mut self.stream, HEADERS, flags, id, &block).await?;
        if !body.is_empty() {
            for (index, chunk) in body.chunks(16_384).enumerate() {
                let last = (index + 1) * 16_384 >= body.len();
                write_frame(
                    &mut self.stream,
                    DATA,
                    if last { 0x1 } else { 0 },
                    id,
                    chunk,
                )
                .await?;
            }
        }
        self.streams.insert(id, StreamState::default());
        Ok(id)
    }

    /// Reads frames until stream `id` has ended; an error when it was reset or the connection went away.
    pub async fn response(&mut self, id: u32) -> io::Result<H2Response> {
        loop {
            if let Some(state) = self.streams.get(&id) {
                if let Some(code) = state.reset {
                    return Err(io::Error::other(format!(
                        "stream {id} reset with code {code}"
                    )));
                }
                if state.done {
                    return Ok(self.streams.remove(&id).unwrap_or_default().response);
                }
            }
            self.read_frame().await?;
        }
    }

    /// One request, its answer.
    pub async fn request(
        &mut self,
        method: &str,
        authority: &str,
        path: &[u8],
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<H2Response> {
        let id = self.send(method, authority, path, headers, body).await?;
        self.response(id).await
    }

    async fn read_frame(&mut self) -> io::Result<()> {
        let mut header = [0u8; 9];
        self.stream.read_exact(&mut header).await?;
        let length =
            ((header[0] as usize) << 16) | ((header[1] as usize) << 8) | header[2] as usize;
        let (kind, flags) = (header[3], header[4]);
        let id = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; length];
        self.stream.read_exact(&mut payload).await?;
        match kind {
            SETTINGS if flags & 0x1 == 0 => {
                write_frame(&mut self.stream, SETTINGS, 0x1, 0, &[]).await?
            }
            PING if flags & 0x1 == 0 => {
                write_frame(&mut self.stream, PING, 0x1, 0, &payload).await?
            }
            GOAWAY => {
                self.goaway = true;
                let last_stream =
                    u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
                        & 0x7fff_ffff;
                let code = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    format!("GOAWAY received (last stream {last_stream}, code {code})"),
                ));
            }
            RST_STREAM => {
                let code = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                self.streams.entry(id).or_default().reset = Some(code);
            }
            HEADERS | CONTINUATION => {
                let mut fragment = payload.as_slice();
                if kind == HEADERS {
                    let mut padding = 0;
                    if flags & 0x8 != 0 {
                        padding = fragment[0] as usize;
                        fragment = &fragment[1..];
                    }
                    if flags & 0x20 != 0 {
                        fragment = &fragment[5..];
                    }
                    fragment = &fragment[..fragment.len() - padding];
                }
                self.block.extend_from_slice(fragment);
                if flags & 0x4 != 0 {
                    let decoded = self
                        .decoder
                        .decode(&self.block)
                        .map_err(|e| io::Error::other(format!("HPACK: {e:?}")))?;
                    self.block.clear();
                    let state = self.streams.entry(id).or_default();
                    for (name, value) in decoded {
                        let name = String::from_utf8_lossy(&name).into_owned();
                        let value = String::from_utf8_lossy(&value).into_owned();
                        if name == ":status" {
                            state.response.status = value.parse().unwrap_or(0);
                        } else {
                            state.response.headers.push((name, value));
                        }
                    }
                }
                if flags & 0x1 != 0 {
                    self.streams.entry(id).or_default().done = true;
                }
            }
            DATA => {
                let mut data = payload.as_slice();
                if flags & 0x8 != 0 {
                    let padding = data[0] as usize;
                    data = &data[1..data.len() - padding];
                }
                let state = self.streams.entry(id).or_default();
                state.response.body.extend_from_slice(data);
                if flags & 0x1 != 0 {
                    state.done = true;
                }
                if !payload.is_empty() {
                    // Give the connection window back so long bodies keep flowing.
                    let increment = (payload.len() as u32).to_be_bytes();
                    write_frame(&mut self.stream, WINDOW_UPDATE, 0, 0, &increment).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

async fn write_frame<S: AsyncWrite + Unpin>(
    stream: &mut S,
    kind: u8,
    flags: u8,
    id: u32,
    payload: &[u8],
) -> io::Result<()> {
    let length = payload.len();
    let mut frame = Vec::with_capacity(9 + length);
    frame.extend_from_slice(&[
        (length >> 16) as u8,
        (length >> 8) as u8,
        length as u8,
        kind,
        flags,
    ]);
    frame.extend_from_slice(&id.to_be_bytes());
    frame.extend_from_slice(payload);
    stream.write_all(&frame).await?;
    stream.flush().await
}
