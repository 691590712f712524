//! Tauri commands: one line each, delegating to the crate that owns the behaviour.

use understudy_core::Overview;
use understudy_store::Backend;

use crate::setup::Setup;
use crate::IpcError;

/// What is set up: drives the first-run screen, the config banner and the status bar.
#[tauri::command]
pub fn app_info(setup: tauri::State<'_, Setup>) -> Overview {
    setup.overview()
}

/// Stores the OpenAI API key from the first-run screen or Settings; says where it went.
#[tauri::command]
pub fn save_api_key(setup: tauri::State<'_, Setup>, key: String) -> Result<Backend, IpcError> {
    setup.save_api_key(&key)
}
