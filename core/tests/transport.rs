//! The transport over real sockets: HTTP/2 over TLS with the raw device paths Flexisip sends, several streams
//! on one connection, CONTINUATION frames, HTTP/1.1 keep-alive with pipelining, h2c, graceful shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, Request};
use axum::routing::{get, patch};
use axum::Router;
use flexiapi_core::http::Peer;
use flexiapi_core::testing::h2::RawH2;
use flexiapi_core::testing::tls::TestCertificate;
use flexiapi_core::transport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const DEVICE: &str = r#""<urn:uuid:5d2c8f1e-7a1b-4c3d-9e8f-0a1b2c3d4e5f>""#;
const CALL: &str = "593429aa242484dd4ecf9392fa7fbb6c793cc88f840d1370be957862c9ec81ef";

fn app() -> Router {
    app_with(None)
}

/// The test router; `/slow` reports on `started` when it begins.
fn app_with(started: Option<tokio::sync::mpsc::UnboundedSender<()>>) -> Router {
    Router::new()
        .route(
            "/api/stats/calls/{call}/devices/{device}",
            patch(
                |Path((call, device)): Path<(String, String)>, body: String| async move {
                    format!("{call}|{device}|{}", body.len())
                },
            ),
        )
        .route(
            "/peer",
            get(|request: Request| async move {
                let peer = request.extensions().get::<Peer>().copied().unwrap();
                format!("{}", peer.secure)
            }),
        )
        .route(
            "/slow",
            get(move || async move {
                if let Some(started) = started {
                    let _ = started.send(());
                }
                tokio::time::sleep(Duration::from_millis(700)).await;
                "slow done"
            }),
        )
        .route(
            "/header",
            get(|request: Request| async move {
                request
                    .headers()
                    .get("x-big")
                    .map_or(0, |v| v.len())
                    .to_string()
            }),
        )
}

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(tls: Option<&TestCertificate>) -> Running {
    start_app(tls, app()).await
}

async fn start_app(tls: Option<&TestCertificate>, app: Router) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = tls.map(|c| transport::load_tls(&c.cert_path, &c.key_path).unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(transport::serve(listener, config, app, async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
        done,
    }
}

fn device_path() -> Vec<u8> {
    format!("/api/stats/calls/{CALL}/devices/{DEVICE}").into_bytes()
}

#[tokio::test]
async fn http2_over_tls_accepts_raw_device_ids() {
    let certificate = TestCertificate::generate();
    let server = start(Some(&certificate)).await;
    let tls = certificate.connect(server.addr, &[b"h2"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut client = RawH2::handshake(tls).await.unwrap();
    let headers = [
        ("accept", "application/json"),
        ("content-type", "application/json"),
    ];

    // Many streams in flight at once on one connection; the client's HPACK table is reused between them.
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(
            client
                .send(
                    "PATCH",
                    "localhost",
                    &device_path(),
                    &headers,
                    br#"{"rang_at":"2026-08-20T10:00:02Z"}"#,
                )
                .await
                .unwrap(),
        );
    }
    for id in ids {
        let response = client.response(id).await.unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.text(), format!("{CALL}|{DEVICE}|34"));
    }
    // A header block larger than one frame arrives through CONTINUATION frames.
    let big = "b".repeat(40_000);
    let response = client
        .request("GET", "localhost", b"/header", &[("x-big", &big)], b"")
        .await
        .unwrap();
    assert_eq!(response.text(), "40000");
    let response = client
        .request("GET", "localhost", b"/peer", &[], b"")
        .await
        .unwrap();
    assert_eq!(response.text(), "true");
    assert!(!client.saw_goaway());
}

#[tokio::test]
async fn cleartext_http2_with_prior_knowledge() {
    let server = start(None).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut client = RawH2::handshake(tcp).await.unwrap();
    let response = client
        .request("PATCH", "localhost:8080", &device_path(), &[], b"{}")
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), format!("{CALL}|{DEVICE}|2"));
    let response = client
        .request("GET", "localhost", b"/peer", &[], b"")
        .await
        .unwrap();
    assert_eq!(response.text(), "false");
}

#[tokio::test]
async fn http1_keep_alive_pipelined_raw_paths() {
    let certificate = TestCertificate::generate();
    let tls_server = start(Some(&certificate)).await;
    let plain_server = start(None).await;
    for secure in [false, true] {
        let server = if secure { &tls_server } else { &plain_server };
        let request = format!(
            "PATCH /api/stats/calls/{CALL}/devices/{DEVICE} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 12\r\n\r\n{{\"a\":\"<>\"}}\r\nGET /peer HTTP/1.1\r\nHost: localhost\r\n\r\n"
        );
        let mut answer = Vec::new();
        if secure {
            let mut tls = certificate.connect(server.addr, &[b"http/1.1"]).await;
            tls.write_all(request.as_bytes()).await.unwrap();
            read_two_responses(&mut tls, &mut answer).await;
        } else {
            let mut tcp = TcpStream::connect(server.addr).await.unwrap();
            tcp.write_all(request.as_bytes()).await.unwrap();
            read_two_responses(&mut tcp, &mut answer).await;
        }
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.contains(&format!("{CALL}|{DEVICE}|12")), "{text}");
        assert!(text.ends_with(&format!("{secure}")), "{text}");
    }
}

async fn read_two_responses<S: tokio::io::AsyncRead + Unpin>(stream: &mut S, answer: &mut Vec<u8>) {
    let mut buffer = [0u8; 4096];
    while String::from_utf8_lossy(answer)
        .matches("HTTP/1.1 200")
        .count()
        < 2
        || !(answer.ends_with(b"true") || answer.ends_with(b"false"))
    {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .expect("answer in time")
            .unwrap();
        assert!(
            n > 0,
            "connection closed early: {}",
            String::from_utf8_lossy(answer)
        );
        answer.extend_from_slice(&buffer[..n]);
    }
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_streams_before_goaway() {
    let certificate = TestCertificate::generate();
    let (started_sender, mut started) = tokio::sync::mpsc::unbounded_channel();
    let mut server = start_app(Some(&certificate), app_with(Some(started_sender))).await;
    let tls = certificate.connect(server.addr, &[b"h2"]).await;
    let mut client = RawH2::handshake(tls).await.unwrap();
    // Warm the connection, then start a slow request and ask the server to stop while it runs.
    assert_eq!(
        client
            .request("GET", "localhost", b"/peer", &[], b"")
            .await
            .unwrap()
            .status,
        200
    );
    let id = client
        .send("GET", "localhost", b"/slow", &[], b"")
        .await
        .unwrap();
    started.recv().await.unwrap();
    server.stop.take().unwrap().send(()).unwrap();
    let response = client
        .response(id)
        .await
        .expect("the in-flight stream completes");
    assert_eq!(response.text(), "slow done");
    assert!(!client.saw_goaway(), "no GOAWAY while the stream was open");
    // The listener is closed: new connections are refused.
    tokio::time::timeout(Duration::from_secs(10), server.done)
        .await
        .expect("server stops")
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(server.addr).await.is_err());
}

/// Runs the system `curl` (built on nghttp2, the HTTP/2 library behind the Flexisip client: Huffman-coded
/// strings, a dynamic table shared by the requests of one connection). `None` when curl or its HTTP/2
/// support is missing, so the test is skipped rather than failed on such machines.
async fn curl(args: &[&str]) -> Option<String> {
    let version = tokio::process::Command::new("curl")
        .arg("--version")
        .output()
        .await
        .ok()?;
    if !String::from_utf8_lossy(&version.stdout).contains("HTTP2") {
        return None;
    }
    let output = tokio::process::Command::new("curl")
        .args(["-s", "-S", "-g", "--path-as-is", "--max-time", "20"])
        .args(args)
        .output()
        .await
        .expect("run curl");
    assert!(
        output.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[tokio::test]
async fn nghttp2_client_sends_raw_device_ids() {
    let certificate = TestCertificate::generate();
    let tls_server = start(Some(&certificate)).await;
    let plain_server = start(None).await;
    let tls_url = format!(
        "https://localhost:{}/api/stats/calls/{CALL}/devices/{DEVICE}",
        tls_server.addr.port()
    );
    let plain_url = format!(
        "http://127.0.0.1:{}/api/stats/calls/{CALL}/devices/{DEVICE}",
        plain_server.addr.port()
    );
    let resolve = format!("localhost:{}:127.0.0.1", tls_server.addr.port());
    let expected = format!("{CALL}|{DEVICE}|2");
    // Several requests on one connection: the later header blocks refer to the client's dynamic table.
    // (curl 7.88 never sends a second request on a reused h2c prior-knowledge connection, even to a stock
    // hyper server, so h2c gets one request.)
    let format = "|%{http_version}|%{http_code}|%{num_connects}\n";
    let cases: [(&str, &String, usize, &[&str]); 3] = [
        ("2", &tls_url, 3, &["-k", "--http2", "--resolve", &resolve]),
        ("2", &plain_url, 1, &["--http2-prior-knowledge"]),
        ("1.1", &plain_url, 3, &["--http1.1"]),
    ];
    for (version, url, requests, options) in cases {
        let mut args = options.to_vec();
        args.extend([
            "-X",
            "PATCH",
            "-H",
            "content-type: application/json",
            "-H",
            "x-api-key: abcdefabcdef",
            "-d",
            "{}",
            "-w",
            format,
        ]);
        args.extend(std::iter::repeat_n(url.as_str(), requests));
        let Some(output) = curl(&args).await else {
            eprintln!("curl with HTTP/2 support not found: skipped");
            return;
        };
        let lines: Vec<&str> = output.lines().collect();
        assert_eq!(lines.len(), requests, "{output}");
        for (index, line) in lines.iter().enumerate() {
            // Only the first request opens a connection.
            let connects = if index == 0 { 1 } else { 0 };
            assert_eq!(
                *line,
                format!("{expected}|{version}|200|{connects}"),
                "{options:?}: {output}"
            );
        }
    }
}

#[tokio::test]
async fn shutdown_does_not_wait_for_silent_connections() {
    let certificate = TestCertificate::generate();
    for tls in [None, Some(&certificate)] {
        let mut server = start(tls).await;
        // A TCP probe that connects and says nothing, and a client idle between requests.
        let _silent = TcpStream::connect(server.addr).await.unwrap();
        let mut idle = RawH2::handshake(TcpStream::connect(server.addr).await.unwrap())
            .await
            .unwrap();
        if tls.is_none() {
            let response = idle
                .request("GET", "localhost", b"/peer", &[], b"")
                .await
                .unwrap();
            assert_eq!(response.text(), "false");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.stop.take().unwrap().send(()).unwrap();
        // Less than the TLS handshake timeout (20 s); hyper's graceful close of the idle h2c connection
        // waits for a PING answer this test client never sends, which the server bounds to 5 s.
        tokio::time::timeout(Duration::from_secs(10), server.done)
            .await
            .expect("shutdown does not wait for connections without requests")
            .unwrap()
            .unwrap();
    }
}
