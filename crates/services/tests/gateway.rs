//! The in-app gateway follows the config: started where `[gateway] listen` says, asking for the
//! per-install token, moved when the address changes, stopped when disabled; a port another
//! program holds is a problem Settings shows, not a crash. Real loopback sockets throughout.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use understudy_core::{Env, Paths, Settings};
use understudy_services::{Change, GatewayProblem, GatewayStatus, Services};
use understudy_store::Secrets;

fn services(dir: &std::path::Path) -> Services {
    let config = dir.join("config.toml");
    let env = Env::from_pairs([("UNDERSTUDY_DATA_DIR", dir.join("data").display().to_string()), ("UNDERSTUDY_CONFIG", config.display().to_string())]);
    let paths = Paths::resolve(&env).unwrap();
    Services::builder(env, paths).secrets(Secrets::file_only(dir)).worker("/bin/false", &[]).build().unwrap()
}

fn configure(dir: &std::path::Path, gateway: &str) {
    std::fs::write(dir.join("config.toml"), format!("[failover]\nstatus_page = \"\"\n[gateway]\n{gateway}\n")).unwrap();
}

/// A loopback port nobody listens on (bound, read, let go).
fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// The status code of `GET path`, or None when nothing listens.
fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n").unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    Some(std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap())
}

/// The code of `GET /understudy/status` (never asks for the token), or None when nothing listens.
fn status(addr: SocketAddr) -> Option<u16> {
    get(addr, "/understudy/status", None)
}

#[test]
fn the_gateway_starts_moves_and_stops_with_the_config() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (free_addr(), free_addr());
    configure(dir.path(), &format!("enabled = true\nlisten = \"{first}\""));
    let services = services(dir.path());
    assert_eq!(services.gateway_status(), GatewayStatus::default(), "nothing runs before the first sync");

    assert_eq!(services.sync_gateway(runtime.handle()), GatewayStatus { listening: Some(first), problem: None });
    let token = services.gateway_token().unwrap();
    assert!(token.starts_with("understudy-"));
    assert_eq!(status(first), Some(200));
    // An unknown path: nothing goes upstream, and the token is checked before the 404.
    assert_eq!(get(first, "/nowhere", None), Some(401), "the per-install token is required");
    assert_eq!(get(first, "/nowhere", Some(&token)), Some(404));
    assert_eq!(services.gateway_token().unwrap(), token, "made once, then kept in the secret store");
    // Nothing changed: the same gateway keeps serving.
    assert_eq!(services.sync_gateway(runtime.handle()).listening, Some(first));
    assert_eq!(status(first), Some(200));

    // A new address by hand, picked up by the window's Retry.
    configure(dir.path(), &format!("enabled = true\nlisten = \"{second}\"\nrequire_token = false"));
    services.reload();
    assert_eq!(services.sync_gateway(runtime.handle()), GatewayStatus { listening: Some(second), problem: None });
    assert_eq!(status(first), None, "the old address is let go");
    assert_eq!(get(second, "/nowhere", None), Some(404), "no token asked for once require_token = false");

    // The Settings switch turns it off.
    let off = Settings { gateway: false, ..Settings::of(&services.current().config) };
    services.write(Change::Settings(&off)).unwrap();
    assert_eq!(services.sync_gateway(runtime.handle()), GatewayStatus::default());
    assert_eq!(status(second), None);
}

#[test]
fn a_port_another_program_holds_is_a_problem_settings_shows() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mine, taken) = (free_addr(), TcpListener::bind("127.0.0.1:0").unwrap());
    let held = taken.local_addr().unwrap();
    configure(dir.path(), &format!("enabled = true\nlisten = \"{mine}\""));
    let services = services(dir.path());
    assert_eq!(services.sync_gateway(runtime.handle()).listening, Some(mine));

    configure(dir.path(), &format!("enabled = true\nlisten = \"{held}\""));
    services.reload();
    let now = services.sync_gateway(runtime.handle());
    assert_eq!(now.listening, None, "the old gateway stopped, no new one");
    match &now.problem {
        Some(p @ GatewayProblem::PortTaken { addr, .. }) => {
            assert_eq!(*addr, held);
            assert!(p.to_string().contains("change [gateway] listen"), "{p}");
        }
        other => panic!("expected the port taken, got {other:?}"),
    }
    assert_eq!(services.gateway_status(), now);
    assert_eq!(status(mine), None);

    // Freed by the other program: the next sync (a Settings save, a restart) serves there.
    drop(taken);
    assert_eq!(services.sync_gateway(runtime.handle()), GatewayStatus { listening: Some(held), problem: None });
}
