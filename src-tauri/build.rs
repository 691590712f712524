fn main() {
    // Declaring the app's commands makes Tauri generate one permission per command, so each
    // window's capability grants exactly the commands it uses (capabilities/*.json).
    tauri_build::try_build(
        tauri_build::Attributes::new().app_manifest(tauri_build::AppManifest::new().commands(&["app_info", "save_api_key"])),
    )
    .expect("tauri build script");
}
