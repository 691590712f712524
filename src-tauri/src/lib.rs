//! The desktop shell. Only this crate knows Tauri: it wires windows, commands, tray and
//! notifications to the library crates and holds no logic of its own.

mod commands;
mod error;
mod setup;

pub use error::IpcError;

/// Builds and runs the app until the last window closes or Quit.
pub fn run() -> anyhow::Result<()> {
    let setup = setup::Setup::from_process()?;
    let _log = setup.init_logging();
    tracing::info!(version = understudy_core::VERSION, data_dir = %setup.paths.data_dir.display(), "starting Understudy");
    if let Some(problem) = &setup.problem_at_start {
        // The window shows it too; the log keeps it for bug reports.
        tracing::warn!("config problem, using defaults: {problem}");
    }
    tauri::Builder::default()
        .manage(setup)
        .invoke_handler(tauri::generate_handler![
            commands::app_info,
            commands::save_api_key,
            commands::get_settings,
            commands::save_settings,
            commands::test_connection,
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
        ])
        .setup(|app| {
            // Probes, status page and pre-warming run for the app's lifetime.
            let router = tauri::Manager::state::<setup::Setup>(app).conversations.router().clone();
            tauri::async_runtime::spawn(async move { router.start_background().await });
            Ok(())
        })
        .run(tauri::generate_context!())
        .map_err(|e| anyhow::anyhow!("the desktop app failed: {e}"))
}
