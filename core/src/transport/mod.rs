//! The HTTP server: HTTPS with ALPN `h2`/`http/1.1` (rustls), cleartext HTTP/1.1 and h2c (prior knowledge).
//!
//! How a connection is served: accept → TLS handshake when configured → pick the protocol (ALPN, else the
//! HTTP/2 preface is sniffed: the Flexisip client sends it whatever ALPN says) → wrap the stream in the
//! matching rewriter ([`h1`], [`h2`]) so that raw `"<urn:uuid:…>"` device ids in paths are accepted → hyper
//! serves the axum router, each request carrying a [`Peer`] extension.
//!
//! Graceful shutdown never sends GOAWAY while streams are open (the Flexisip client fails every queued update
//! of an id when it sees one): listening stops, each connection drains its in-flight requests, then closes.
//! Idle connections are never closed by us first (the client closes after 60 s idle).

pub mod h1;
pub mod h2;
pub mod rewrite;
pub mod target;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::http::Peer;
use rewrite::Rewriting;

/// Longest a TLS handshake may take (the client allows 20 s to connect and handshake).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest graceful shutdown waits for in-flight requests of a connection.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(25);
/// HTTP/1.1: longest wait for a request head, idle keep-alive included (above the client's 60 s).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(120);

/// Why the server could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A certificate or key file could not be read.
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: io::Error },
    /// No usable certificate or key in the file.
    #[error("{0}")]
    Pem(String),
    /// rustls refused the certificate/key pair.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// Loads a PEM certificate chain and private key into a server configuration offering `h2` and `http/1.1`.
pub fn load_tls(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TransportError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TransportError::Read {
            path: path.display().to_string(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TransportError::Pem(format!("{}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(TransportError::Pem(format!(
            "{}: no certificate found (FLEXIAPI_TLS_CERT)",
            cert.display()
        )));
    }
    let private_key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| TransportError::Pem(format!("{}: {e}", key.display())))?
        .ok_or_else(|| {
            TransportError::Pem(format!(
                "{}: no private key found (FLEXIAPI_TLS_KEY)",
                key.display()
            ))
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains and returns.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let acceptor = tls.map(TlsAcceptor::from);
    let (stop_sender, stop) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, addr) = match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let connection = Connection {
                    app: app.clone(),
                    acceptor: acceptor.clone(),
                    stop: stop.clone(),
                    addr,
                };
                connections.spawn(connection.run(stream));
            }
            // Reap finished connection tasks so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stop_sender.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// How long a draining connection must stay without requests before it is closed: a request the client has
/// already sent may still be on its way.
const QUIET_PERIOD: Duration = Duration::from_millis(250);

/// Counts a connection's requests in progress, for draining.
#[derive(Default)]
struct InFlight {
    count: AtomicUsize,
    started: AtomicUsize,
    idle: Notify,
}

impl InFlight {
    fn start(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.started.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.clone())
    }

    /// Resolves once no request is in progress and none started during a quiet period.
    async fn wait_idle(&self) {
        loop {
            loop {
                let notified = self.idle.notified();
                if self.count.load(Ordering::SeqCst) == 0 {
                    break;
                }
                notified.await;
            }
            let started = self.started.load(Ordering::SeqCst);
            tokio::time::sleep(QUIET_PERIOD).await;
            if self.count.load(Ordering::SeqCst) == 0
                && self.started.load(Ordering::SeqCst) == started
            {
                return;
            }
        }
    }
}

struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

struct Connection {
    app: Router,
    acceptor: Option<TlsAcceptor>,
    stop: watch::Receiver<bool>,
    addr: SocketAddr,
}

enum Protocol {
    Http1,
    Http2,
}

/// Runs `future` unless shutdown starts first: a connection that has not sent a request yet has nothing to
/// drain, and waiting for it (a silent TCP probe, a slow handshake) would hold shutdown up.
async fn unless_stopped<F: Future>(
    stop: &mut watch::Receiver<bool>,
    future: F,
) -> Option<F::Output> {
    tokio::select! {
        output = future => Some(output),
        _ = stop.wait_for(|stopped| *stopped) => None,
    }
}

impl Connection {
    async fn run(self, stream: TcpStream) {
        match self.acceptor.clone() {
            Some(acceptor) => {
                let mut stop = self.stop.clone();
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                let tls = match unless_stopped(&mut stop, handshake).await {
                    Some(Ok(Ok(tls))) => tls,
                    Some(Ok(Err(error))) => {
                        tracing::debug!(peer = %self.addr, %error, "TLS handshake failed");
                        return;
                    }
                    Some(Err(_)) | None => return,
                };
                let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                match alpn.as_deref() {
                    Some(b"h2") => {
                        self.serve_with(tls, Protocol::Http2, Vec::new(), true)
                            .await
                    }
                    Some(b"http/1.1") => {
                        self.serve_with(tls, Protocol::Http1, Vec::new(), true)
                            .await
                    }
                    _ => self.sniff(tls, true).await,
                }
            }
            None => self.sniff(stream, false).await,
        }
    }

    /// Reads enough to tell the HTTP/2 preface from an HTTP/1.1 request line.
    async fn sniff<S>(self, mut stream: S, secure: bool)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut seen = Vec::with_capacity(h2::PREFACE.len());
        let mut byte = [0u8; 64];
        let mut stop = self.stop.clone();
        while seen.len() < h2::PREFACE.len() && h2::PREFACE.starts_with(&seen) {
            let want = (h2::PREFACE.len() - seen.len()).min(byte.len());
            // The same patience as for an HTTP/1.1 request head.
            let read = tokio::time::timeout(HEADER_READ_TIMEOUT, stream.read(&mut byte[..want]));
            match unless_stopped(&mut stop, read).await {
                Some(Ok(Ok(n))) if n > 0 => seen.extend_from_slice(&byte[..n]),
                _ => return,
            }
        }
        let protocol = if seen.as_slice() == h2::PREFACE {
            Protocol::Http2
        } else {
            Protocol::Http1
        };
        self.serve_with(stream, protocol, seen, secure).await
    }

    async fn serve_with<S>(self, stream: S, protocol: Protocol, already_read: Vec<u8>, secure: bool)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let peer = Peer {
            addr: self.addr,
            secure,
        };
        let in_flight = Arc::new(InFlight::default());
        let app = self.app.clone();
        let tracker = in_flight.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let guard = tracker.start();
            request.extensions_mut().insert(peer);
            let app = app.clone();
            async move {
                let response = app.oneshot(request.map(axum::body::Body::new)).await;
                drop(guard);
                response
            }
        });
        let mut stop = self.stop.clone();
        match protocol {
            Protocol::Http2 => {
                let io = TokioIo::new(Rewriting::new(stream, h2::H2::default(), &already_read));
                let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                builder
                    .timer(TokioTimer::new())
                    .max_concurrent_streams(1024)
                    .max_pending_accept_reset_streams(Some(1024))
                    .max_header_list_size(256 * 1024)
                    .initial_stream_window_size(1 << 20)
                    .initial_connection_window_size(4 << 20);
                let connection = builder.serve_connection(io, service);
                tokio::pin!(connection);
                drive(connection.as_mut(), &mut stop, &in_flight, |c| {
                    c.graceful_shutdown()
                })
                .await;
            }
            Protocol::Http1 => {
                let io = TokioIo::new(Rewriting::new(stream, h1::H1::default(), &already_read));
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .timer(TokioTimer::new())
                    .keep_alive(true)
                    .header_read_timeout(HEADER_READ_TIMEOUT);
                let connection = builder.serve_connection(io, service);
                tokio::pin!(connection);
                drive(connection.as_mut(), &mut stop, &in_flight, |c| {
                    c.graceful_shutdown()
                })
                .await;
            }
        }
    }
}

/// Runs a connection until it ends, or until shutdown: then waits for its requests in progress (still
/// serving them), and only when none is left asks hyper to close (GOAWAY on HTTP/2 with no open stream).
async fn drive<C, E>(
    mut connection: std::pin::Pin<&mut C>,
    stop: &mut watch::Receiver<bool>,
    in_flight: &InFlight,
    close: impl FnOnce(std::pin::Pin<&mut C>),
) where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
            return;
        }
        _ = stop.wait_for(|stopped| *stopped) => {}
    }
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = tokio::time::timeout(DRAIN_TIMEOUT, in_flight.wait_idle()) => {}
    }
    close(connection.as_mut());
    let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
}
