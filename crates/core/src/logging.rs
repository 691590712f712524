//! Tracing to stderr and to a daily-rotating file in the data dir's `logs/`, filtered by
//! `UNDERSTUDY_LOG` (an `EnvFilter` directive, default `info`).

use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter, Layer};

use crate::env::Env;

/// Days of log files kept.
pub const KEEP_LOG_FILES: usize = 7;

/// Keeps the file writer flushing; drop it last (at exit) so no line is lost.
#[derive(Debug)]
pub struct LogGuard {
    _file: Option<WorkerGuard>,
}

/// Installs the global subscriber. `file_prefix` names the log file (`understudy-app`,
/// `understudy`), so the app and the CLI do not interleave in one file. A logs dir that cannot
/// be created degrades to stderr only, with a warning; logging never stops the program.
///
/// Sets the process umask to 077 first ([`crate::paths::private_umask`]): the log files
/// (created at each daily rotation by tracing-appender, which takes no mode) and everything
/// else the program creates are owner-only. Log files of earlier runs are tightened to 0600.
pub fn init(env: &Env, logs_dir: &Path, file_prefix: &str) -> LogGuard {
    crate::paths::private_umask();
    let directive = env.non_empty("UNDERSTUDY_LOG").unwrap_or("info");
    let filter = || EnvFilter::try_new(directive).unwrap_or_else(|_| EnvFilter::new("info"));
    let stderr = fmt::layer().with_writer(std::io::stderr).with_target(false).with_filter(filter());

    let appender = std::fs::create_dir_all(logs_dir).and_then(|()| private_logs(logs_dir)).map_err(|e| e.to_string()).and_then(|()| {
        tracing_appender::rolling::Builder::new()
            .rotation(tracing_appender::rolling::Rotation::DAILY)
            .filename_prefix(file_prefix)
            .filename_suffix("log")
            .max_log_files(KEEP_LOG_FILES)
            .build(logs_dir)
            .map_err(|e| e.to_string())
    });
    let (file_layer, guard, file_error) = match appender {
        Ok(appender) => {
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let layer = fmt::layer().with_writer(writer).with_ansi(false).with_filter(filter());
            (Some(layer), Some(guard), None)
        }
        Err(e) => (None, None, Some(e)),
    };
    // try_init: a second call (tests, an embedding app) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(stderr).with(file_layer).try_init();
    if let Some(e) = file_error {
        tracing::warn!("logging to stderr only: cannot open log files in {}: {e}", logs_dir.display());
    }
    LogGuard { _file: guard }
}

/// The logs dir 0700 and the files in it 0600 (those an older version or another umask made).
fn private_logs(logs_dir: &Path) -> std::io::Result<()> {
    crate::paths::private_dir(logs_dir)?;
    #[cfg(unix)]
    for entry in std::fs::read_dir(logs_dir)?.flatten() {
        use std::os::unix::fs::PermissionsExt;
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}
