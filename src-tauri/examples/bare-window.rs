//! The footprint bench's baseline (`cargo xtask bench footprint`): a bare Tauri window of the
//! app's Tauri version and window size showing one small HTML page (served from a custom scheme,
//! as the app's own pages are); no tray, no IPC.

const PAGE: &str = "<!doctype html><title>bare-window</title><h1>A bare Tauri window</h1>";

fn main() {
    let mut context = tauri::generate_context!("tauri.conf.json");
    context.config_mut().app.windows.clear();
    let run = tauri::Builder::default()
        .register_uri_scheme_protocol("bare", |_, _| {
            let page = tauri::http::Response::builder().header("content-type", "text/html").body(PAGE.as_bytes().to_vec());
            page.unwrap_or_else(|_| tauri::http::Response::new(Vec::new()))
        })
        .setup(|app| {
            let url = tauri::WebviewUrl::External("bare://localhost/".parse().map_err(|e| format!("{e}"))?);
            tauri::WebviewWindowBuilder::new(app, "bare", url).title("bare-window").inner_size(1100.0, 720.0).build()?;
            Ok(())
        })
        .run(context);
    if let Err(e) = run {
        eprintln!("bare-window: {e}");
        std::process::exit(1);
    }
}
