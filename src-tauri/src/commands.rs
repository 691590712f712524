//! Tauri commands: one line each, delegating to the crate that owns the behaviour.

use understudy_core::Overview;

use crate::setup::Setup;

/// What is set up: drives the first-run screen, the config banner and the status bar.
#[tauri::command]
pub fn app_info(setup: tauri::State<'_, Setup>) -> Overview {
    setup.overview()
}
