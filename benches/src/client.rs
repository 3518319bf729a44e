//! A lean HTTP/1.1 keep-alive client: writes prepared request bytes, reads one response. Kept minimal so the
//! load generator spends its core on sending, not on a client library.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One keep-alive connection.
pub struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

/// A response: status, raw head and body, borrowed from the connection's buffer.
pub struct Answer<'a> {
    /// HTTP status.
    pub status: u16,
    /// The head bytes (status line and headers).
    pub head: &'a [u8],
    /// The body bytes.
    pub body: &'a [u8],
}

impl Answer<'_> {
    /// Every value of header `name` (case-insensitive), as text.
    pub fn headers(&self, name: &str) -> Vec<String> {
        let text = String::from_utf8_lossy(self.head);
        text.split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .filter(|(key, _)| key.trim().eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim().to_owned())
            .collect()
    }
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

impl Connection {
    /// Connects to `addr`.
    pub async fn open(addr: std::net::SocketAddr) -> io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buffer: Vec::with_capacity(8192),
        })
    }

    /// Sends `request` and reads its response (Content-Length or chunked body).
    pub async fn exchange(&mut self, request: &[u8]) -> io::Result<Answer<'_>> {
        self.stream.write_all(request).await?;
        self.buffer.clear();
        loop {
            if self.buffer.capacity() - self.buffer.len() < 1024 {
                self.buffer.reserve(8192);
            }
            if self.stream.read_buf(&mut self.buffer).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ));
            }
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            let head_len = match response.parse(&self.buffer) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => continue,
                Err(_) => return Err(invalid("bad response head")),
            };
            let status = response.code.unwrap_or(0);
            let mut length = None;
            let mut chunked = false;
            for header in response.headers.iter() {
                if header.name.eq_ignore_ascii_case("content-length") {
                    length = std::str::from_utf8(header.value)
                        .ok()
                        .and_then(|v| v.trim().parse::<usize>().ok());
                } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = header.value.eq_ignore_ascii_case(b"chunked");
                }
            }
            let end = match (length, chunked) {
                (Some(length), _) => {
                    (self.buffer.len() >= head_len + length).then_some(head_len + length)
                }
                (None, true) => self
                    .buffer
                    .ends_with(b"0\r\n\r\n")
                    .then_some(self.buffer.len()),
                (None, false) => Some(head_len),
            };
            if let Some(end) = end {
                return Ok(Answer {
                    status,
                    head: &self.buffer[..head_len],
                    body: &self.buffer[head_len..end],
                });
            }
        }
    }
}

/// Formats one request with the headers the Flexisip client sends (and `extra` lines, each ending in CRLF).
pub fn request(method: &str, host: &str, path: &str, extra: &str, body: &str, out: &mut Vec<u8>) {
    use std::io::Write;
    out.clear();
    let _ = write!(
        out,
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\naccept: application/json\r\n{extra}"
    );
    if !body.is_empty() {
        let _ = write!(
            out,
            "content-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        );
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
}
