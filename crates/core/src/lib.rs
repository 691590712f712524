//! Understudy's shared core: configuration (design.md section 2), data directories, logging and
//! the overview of what is set up. Everything here is synchronous and cheap; the only I/O is
//! reading the config file and creating directories and log files.

pub mod config;
pub mod env;
pub mod failure;
pub mod health;
pub mod links;
pub mod logging;
pub mod overview;
pub mod paths;
pub mod providers;
pub mod settings;
pub mod turn;

pub use config::{Config, ConfigError, Loaded, Mode};
pub use env::Env;
pub use failure::{ErrorClass, NextAction};
pub use overview::Overview;
pub use paths::Paths;
pub use settings::Settings;
pub use turn::{Role, Turn};

/// The version shown by `understudy --version` and the app's About.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
