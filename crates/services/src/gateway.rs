//! The desktop app's in-app gateway (`[gateway] enabled`): started, moved or stopped to match
//! the config in effect, serving the process's shared router so that other tools and the window
//! see one health; it asks for the per-install token kept in the secret store unless
//! `require_token = false`.

use std::net::SocketAddr;
use std::time::Duration;

use understudy_gateway::{GatewayConfig, GatewayError, Running};
use understudy_router::Router;
use understudy_store::{SecretError, Secrets};

/// The secret store's name for the in-app gateway's token.
pub const TOKEN_NAME: &str = "gateway-token";

/// How long answers in flight on a gateway being stopped or moved may take to finish.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// Why the per-install token could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Secrets(#[from] SecretError),
    #[error(transparent)]
    Random(std::io::Error),
}

/// Why the gateway does not serve although `[gateway] enabled` asks for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayProblem {
    /// It never serves without the token it was asked to require.
    #[error("no gateway token could be kept: {0}")]
    Token(String),
    /// Another program listens there.
    #[error("{message} (another program, perhaps `understudy serve`, uses that port; stop it or change [gateway] listen)")]
    PortTaken { addr: SocketAddr, message: String },
    #[error("{0}")]
    Start(String),
}

/// What Settings shows of the gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayStatus {
    /// Where it listens now; None while stopped.
    pub listening: Option<SocketAddr>,
    /// Why it does not serve although enabled, from the last [`crate::Services::sync_gateway`].
    pub problem: Option<GatewayProblem>,
}

/// The gateway the config asks for.
#[derive(Debug)]
pub(crate) struct Want {
    pub(crate) addr: SocketAddr,
    /// The token it requires, read before the runtime is entered; None: it requires none.
    pub(crate) token: Option<Result<String, TokenError>>,
}

/// The running gateway (and whether it asks for the token) and its status.
#[derive(Debug, Default)]
pub(crate) struct InApp {
    running: tokio::sync::Mutex<Option<(Running, bool)>>,
    status: std::sync::Mutex<GatewayStatus>,
}

impl InApp {
    pub(crate) fn status(&self) -> GatewayStatus {
        self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Makes the running gateway match `want`; stops it when `want` is None.
    pub(crate) async fn sync(&self, router: &Router, want: Option<Want>) {
        let mut running = self.running.lock().await;
        if running.as_ref().map(|(r, token)| (r.addr, *token)) == want.as_ref().map(|w| (w.addr, w.token.is_some())) {
            return;
        }
        if let Some((r, _)) = running.take() {
            r.stop(STOP_GRACE).await;
        }
        let mut problem = None;
        if let Some(Want { addr, token }) = want {
            let require_token = token.is_some();
            match token.transpose() {
                Err(e) => problem = Some(GatewayProblem::Token(e.to_string())),
                Ok(token) => match understudy_gateway::start(router.clone(), GatewayConfig { token, ..GatewayConfig::default() }, addr).await {
                    Ok(r) => *running = Some((r, require_token)),
                    Err(e) => {
                        tracing::warn!("in-app gateway: {e}");
                        problem = Some(match &e {
                            GatewayError::Bind { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse => {
                                GatewayProblem::PortTaken { addr, message: e.to_string() }
                            }
                            _ => GatewayProblem::Start(e.to_string()),
                        });
                    }
                },
            }
        }
        *self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = GatewayStatus { listening: running.as_ref().map(|(r, _)| r.addr), problem };
    }
}

/// The per-install token, made (32 random bytes) and kept in the secret store the first time
/// it is needed.
pub(crate) fn token(secrets: &Secrets) -> Result<String, TokenError> {
    if let Some(t) = secrets.get(TOKEN_NAME)?.filter(|t| !t.trim().is_empty()) {
        return Ok(t);
    }
    let token = understudy_gateway::new_token().map_err(TokenError::Random)?;
    secrets.set(TOKEN_NAME, &token)?;
    Ok(token)
}
