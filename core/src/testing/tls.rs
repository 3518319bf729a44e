//! A throw-away certificate for `localhost`, and a client that trusts it.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A self-signed `localhost` certificate written to a temporary directory.
pub struct TestCertificate {
    /// PEM certificate path (for `FLEXIAPI_TLS_CERT`).
    pub cert_path: PathBuf,
    /// PEM key path (for `FLEXIAPI_TLS_KEY`).
    pub key_path: PathBuf,
    der: rustls::pki_types::CertificateDer<'static>,
    _dir: tempfile::TempDir,
}

impl TestCertificate {
    /// Generates a certificate for `localhost` and `127.0.0.1`.
    pub fn generate() -> TestCertificate {
        let key = rcgen::KeyPair::generate().expect("key pair");
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("certificate parameters");
        let cert = params.self_signed(&key).expect("self-signed certificate");
        let dir = tempfile::tempdir().expect("temporary directory");
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&cert_path, cert.pem()).expect("write certificate");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        TestCertificate {
            cert_path,
            key_path,
            der: cert.der().clone(),
            _dir: dir,
        }
    }

    /// Connects to `addr` over TLS offering exactly the given ALPN protocols (Flexisip offers only `h2`).
    pub async fn connect(
        &self,
        addr: std::net::SocketAddr,
        alpn: &[&[u8]],
    ) -> TlsStream<TcpStream> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.der.clone())
            .expect("trust the test certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
        connector.connect(name, tcp).await.expect("TLS handshake")
    }
}
