#![allow(clippy::unwrap_used)]
//! An https download that the server redirects to plain http is refused before the http URL is
//! requested: on the way a network attacker could swap the file. (The hub and CDNs redirect
//! https → https; a local http mirror may redirect to http, which the other suites use.)
//!
//! One test, because it points the system trust store (`SSL_CERT_FILE`) at a test CA.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use understudy_models::download::{DownloadConfig, DownloadControl, DownloadError, DownloadRequest, Downloader};

/// A CA (PEM) and a server config it signed for 127.0.0.1.
fn pki() -> (String, ServerConfig) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&leaf_key, &ca_cert, &ca_key).unwrap();
    let server = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())))
        .unwrap();
    (ca_cert.pem(), server)
}

/// Answers every request on `listener` with `reply` (TLS when `tls` is given); counts them.
async fn serve(listener: TcpListener, tls: Option<ServerConfig>, reply: String, hits: Arc<AtomicU32>) {
    let acceptor = tls.map(|c| tokio_rustls::TlsAcceptor::from(Arc::new(c)));
    loop {
        let Ok((tcp, _)) = listener.accept().await else { return };
        let (acceptor, reply, hits) = (acceptor.clone(), reply.clone(), hits.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            match acceptor {
                Some(a) => {
                    let Ok(mut s) = a.accept(tcp).await else { return };
                    let _ = s.read(&mut buf).await;
                    hits.fetch_add(1, Ordering::SeqCst);
                    let _ = s.write_all(reply.as_bytes()).await;
                    let _ = s.shutdown().await;
                }
                None => {
                    let mut s = tcp;
                    let _ = s.read(&mut buf).await;
                    hits.fetch_add(1, Ordering::SeqCst);
                    let _ = s.write_all(reply.as_bytes()).await;
                    let _ = s.shutdown().await;
                }
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_from_https_to_http_is_refused() {
    let (ca_pem, tls) = pki();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, ca_pem).unwrap();
    std::env::set_var("SSL_CERT_FILE", &bundle);
    for var in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
        std::env::remove_var(var);
    }

    let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_port = plain.local_addr().unwrap().port();
    let plain_hits = Arc::new(AtomicU32::new(0));
    let body = "GGUF-not-really";
    let ok = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
    tokio::spawn(serve(plain, None, ok, plain_hits.clone()));

    let secure = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let secure_port = secure.local_addr().unwrap().port();
    let secure_hits = Arc::new(AtomicU32::new(0));
    let redirect = format!("HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{plain_port}/m.gguf\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    tokio::spawn(serve(secure, Some(tls), redirect, secure_hits.clone()));

    let dest = dir.path().join("models/m.gguf");
    let mut req = DownloadRequest::new(format!("https://127.0.0.1:{secure_port}/o/r/resolve/main/m.gguf"), &dest);
    req.allow_unverified = true; // the redirect alone must be enough to refuse
    let err = Downloader::new(DownloadConfig::default()).unwrap().download(req, |_| {}, DownloadControl::new()).await.unwrap_err();
    assert!(matches!(err, DownloadError::InsecureRedirect { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("http://127.0.0.1:{plain_port}/m.gguf")), "{err}");
    assert_eq!(secure_hits.load(Ordering::SeqCst), 1, "the https server was reached (the CA is trusted)");
    assert_eq!(plain_hits.load(Ordering::SeqCst), 0, "the http URL was never requested");
    assert!(!dest.exists());

    // The same redirect from an http endpoint (a local mirror) is followed.
    let plain2 = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port2 = plain2.local_addr().unwrap().port();
    let hop = format!("HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{plain_port}/m.gguf\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    tokio::spawn(serve(plain2, None, hop, Arc::default()));
    let mut req = DownloadRequest::new(format!("http://127.0.0.1:{port2}/o/r/resolve/main/m.gguf"), &dest);
    req.allow_unverified = true;
    let got = Downloader::new(DownloadConfig::default()).unwrap().download(req, |_| {}, DownloadControl::new()).await.unwrap();
    assert_eq!(std::fs::read_to_string(&got.path).unwrap(), body);
    assert!(plain_hits.load(Ordering::SeqCst) >= 1);
}
