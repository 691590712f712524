//! The desktop shell. Only this crate knows Tauri: it wires windows, commands, tray and
//! notifications to the library crates and holds no logic of its own.

mod commands;
mod error;
mod navigation;
mod notifier;
mod setup;
mod tray;
#[cfg(test)]
mod ts;
mod window;

pub use error::{IpcCode, IpcError};

/// The argument the login item starts the app with (then "start minimized" applies).
const AUTOSTART_ARG: &str = "--autostart";

/// Builds and runs the app until the last window closes or Quit.
pub fn run() -> anyhow::Result<()> {
    window::prefer_cpu_rendering();
    let setup = setup::Setup::from_process()?;
    let _log = setup.init_logging();
    tracing::info!(version = understudy_core::VERSION, data_dir = %setup.paths().data_dir.display(), "starting Understudy");
    let loaded = setup.services.current();
    if let Some(problem) = &loaded.problem {
        // The window shows it too; the log keeps it for bug reports.
        tracing::warn!("config problem, using defaults: {problem}");
    }
    let config = loaded.config;
    let hold = config.tray.hold;
    let release_after = config.tray.release_after;
    let notifications = understudy_alerts::NotifierConfig {
        enabled: config.notifications.enabled,
        recovery_after: config.notifications.recovery_after,
        reopen_window: config.notifications.reopen_window,
    };
    let autostarted = std::env::args().any(|a| a == AUTOSTART_ARG);
    let hide_at_start = autostarted && setup.start_minimized();
    tauri::Builder::default()
        // First: a second launch focuses the running window instead of starting another app.
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
            window::show(app);
        }))
        // The window stays on the app's own pages, whatever an answer holds.
        .plugin(navigation::guard())
        .plugin(tauri_plugin_autostart::init(tauri_plugin_autostart::MacosLauncher::LaunchAgent, Some(vec![AUTOSTART_ARG])))
        .plugin(tauri_plugin_opener::init())
        .manage(setup)
        .manage(window::Shell::new(release_after))
        .invoke_handler(command_handler())
        .setup(move |app| {
            tracing::info!("setting up the window, tray and notifier");
            // Probes, status page and pre-warming run for the app's lifetime.
            let router = tauri::Manager::state::<setup::Setup>(app).conversations.router().clone();
            tauri::async_runtime::spawn(async move { router.start_background().await });
            tauri::Manager::state::<setup::Setup>(app).apply_gateway();
            #[cfg(target_os = "linux")]
            if let Some(w) = tauri::Manager::get_webview_window(app, window::MAIN) {
                window::automation::follow(&w);
            }
            tray::create(app.handle(), hold)?;
            notifier::start(app.handle(), notifications);
            if hide_at_start {
                window::hide(app.handle());
            }
            Ok(())
        })
        // Closing the window hides it to the tray (its web view goes later); Quit is in the tray menu.
        .on_window_event(|w, event| {
            if let tauri::WindowEvent::CloseRequested { api, .. } = event {
                api.prevent_close();
                window::hide(tauri::Manager::app_handle(w));
            }
        })
        .build(tauri::generate_context!())
        .map_err(|e| anyhow::anyhow!("the desktop app failed: {e}"))?
        .run(|_, event| {
            // A released window is no reason to exit: the tray lives on until Quit (which exits with a code).
            if let tauri::RunEvent::ExitRequested { api, code: None, .. } = event {
                api.prevent_exit();
            }
        });
    Ok(())
}

/// Every command the window may invoke; each window's capability grants the ones it uses.
fn command_handler() -> impl Fn(tauri::ipc::Invoke) -> bool + Send + Sync + 'static {
    tauri::generate_handler![
        commands::app_info,
        commands::store_notice,
        commands::dismiss_store_notice,
        commands::save_api_key,
        commands::get_settings,
        commands::gateway_access,
        commands::save_settings,
        commands::test_connection,
        commands::provider_presets,
        commands::get_providers,
        commands::save_providers,
        commands::save_provider_key,
        commands::test_provider,
        commands::provider_models,
        commands::get_key_env_allowed,
        commands::set_key_env_allowed,
        commands::list_conversations,
        commands::create_conversation,
        commands::rename_conversation,
        commands::set_conversation_options,
        commands::delete_conversation,
        commands::restore_conversation,
        commands::search_messages,
        commands::get_messages,
        commands::send_message,
        commands::regenerate,
        commands::edit_and_resend,
        commands::stop_answer,
        commands::export_conversation,
        commands::watch_health,
        commands::get_desktop_prefs,
        commands::set_desktop_prefs,
        commands::models_overview,
        commands::models_search,
        commands::models_files,
        commands::models_download,
        commands::models_pause,
        commands::models_cancel,
        commands::models_import,
        commands::models_remove,
        commands::models_choose,
        commands::open_link,
        commands::ui_state_save,
        commands::ui_state_load,
    ]
}
