#![allow(clippy::unwrap_used)]
//! HTTPS the way companies run it: an OpenAI-compatible server whose certificate comes from a
//! private CA that only the system's trust store knows (here `SSL_CERT_FILE`, which the system
//! store honours), reached through an `HTTPS_PROXY`. The client trusts the system store as well
//! as its bundled roots, and follows the proxy.
//!
//! One test, because it sets process-wide environment variables.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use understudy_openai::{Client, ClientConfig, ErrorKind, FailureClass};

const HOST: &str = "api.understudy.test";

/// A private CA (PEM) and a TLS config for a server it signed, valid for `HOST` and 127.0.0.1.
fn company_pki() -> (String, ServerConfig) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "Understudy Test Corp Root CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![HOST.to_string(), "127.0.0.1".to_string()]).unwrap().signed_by(&leaf_key, &ca_cert, &ca_key).unwrap();
    let server = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())))
        .unwrap();
    (ca_cert.pem(), server)
}

/// An HTTPS server answering every request with a model list; counts the requests it served.
async fn https_server(config: ServerConfig, served: Arc<Mutex<u32>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, served) = (acceptor.clone(), served.clone());
            tokio::spawn(async move {
                // A client that does not trust us hangs up during the handshake.
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let _ = read_head(&mut tls).await;
                let body = r#"{"object":"list","data":[{"id":"gpt-4o-mini","object":"model","owned_by":"corp"}]}"#;
                let reply = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                *served.lock().unwrap() += 1;
                let _ = tls.write_all(reply.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

/// A CONNECT proxy that tunnels every request to `upstream` and records what it was asked for.
async fn connect_proxy(upstream: SocketAddr, asked: Arc<Mutex<Vec<String>>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else { return };
            let asked = asked.clone();
            tokio::spawn(async move {
                let head = read_head(&mut client).await;
                asked.lock().unwrap().push(head.lines().next().unwrap_or_default().to_string());
                let Ok(mut server) = TcpStream::connect(upstream).await else { return };
                let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    addr
}

/// Reads an HTTP request head (up to the blank line).
async fn read_head<S: AsyncReadExt + Unpin>(s: &mut S) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).await.is_ok_and(|n| n == 1) {
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn client(base_url: &str) -> Client {
    Client::new(ClientConfig {
        base_url: base_url.into(),
        api_key: Some("sk-test-TLS0123456789".into()),
        provider: "OpenAI".into(),
        connect_timeout: Duration::from_secs(3),
        first_token_timeout: Duration::from_secs(3),
        reasoning_first_token_timeout: Duration::from_secs(3),
        stall_timeout: Duration::from_secs(3),
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_company_ca_in_the_system_store_is_trusted_and_https_proxy_is_followed() {
    for var in ["SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"] {
        std::env::remove_var(var);
    }
    let (ca_pem, server_config) = company_pki();
    let served = Arc::new(Mutex::new(0));
    let server = https_server(server_config, served.clone()).await;
    let direct = format!("https://127.0.0.1:{}/v1", server.port());

    // Not trusted by the bundled roots or the machine's store: a TLS failure, an outage-class
    // error in words, never an answer.
    let err = client(&direct).models().await.unwrap_err();
    assert!(matches!((&err.kind, &err.class), (ErrorKind::Tls, FailureClass::Outage)), "{err:?}");
    assert_eq!(*served.lock().unwrap(), 0);

    // The company's CA added to the system store (as SSL_CERT_FILE points the store at it).
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("company-ca.pem");
    std::fs::write(&bundle, &ca_pem).unwrap();
    std::env::set_var("SSL_CERT_FILE", &bundle);
    let models = client(&direct).models().await.unwrap();
    assert_eq!(models.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["gpt-4o-mini"]);
    assert_eq!(*served.lock().unwrap(), 1);

    // Behind the company proxy: the host name does not even resolve here, so the answer can
    // only come through the tunnel.
    let asked = Arc::new(Mutex::new(Vec::new()));
    let proxy = connect_proxy(server, asked.clone()).await;
    let behind = format!("https://{HOST}:{}/v1", server.port());
    assert!(client(&behind).models().await.is_err(), "{HOST} must not be reachable without the proxy");
    std::env::set_var("HTTPS_PROXY", format!("http://{proxy}"));
    let models = client(&behind).models().await.unwrap();
    assert_eq!(models[0].id, "gpt-4o-mini");
    assert_eq!(*asked.lock().unwrap(), [format!("CONNECT {HOST}:{} HTTP/1.1", server.port())]);
    assert_eq!(*served.lock().unwrap(), 2);
}
