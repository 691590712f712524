/// Every command of src-tauri/src/commands.rs; capabilities/main.json grants them to the window.
const COMMANDS: [&str; 36] = [
    "app_info",
    "store_notice",
    "dismiss_store_notice",
    "save_api_key",
    "get_settings",
    "save_settings",
    "gateway_access",
    "test_connection",
    "list_conversations",
    "create_conversation",
    "rename_conversation",
    "set_conversation_options",
    "delete_conversation",
    "restore_conversation",
    "search_messages",
    "get_messages",
    "send_message",
    "regenerate",
    "edit_and_resend",
    "stop_answer",
    "export_conversation",
    "watch_health",
    "get_desktop_prefs",
    "set_desktop_prefs",
    "models_overview",
    "models_search",
    "models_files",
    "models_download",
    "models_pause",
    "models_cancel",
    "models_import",
    "models_remove",
    "models_choose",
    "open_link",
    "ui_state_save",
    "ui_state_load",
];

fn main() {
    // Declaring the app's commands makes Tauri generate one permission per command, so each
    // window's capability grants exactly the commands it uses (capabilities/*.json).
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(tauri_build::AppManifest::new().commands(&COMMANDS))).expect("tauri build script");
}
