//! The window never leaves the app: the rule of `understudy_core::links` installed on every
//! webview. Answers' web links open in the system browser through `open_link` instead.

use tauri::plugin::TauriPlugin;
use tauri::{Runtime, Url};
use understudy_core::links::{allowed_navigation, app_origin};

/// Installs the guard on every webview the app creates.
pub fn guard<R: Runtime>() -> TauriPlugin<R> {
    tauri::plugin::Builder::new("navigation-guard")
        .on_navigation(|webview, url| {
            // Tauri loads the app from the dev server instead when a dev build configures one.
            let dev_server = if tauri::is_dev() { tauri::Manager::config(webview).build.dev_url.clone() } else { None };
            let own: Vec<Url> = std::iter::once(app_origin()).chain(dev_server).collect();
            let allowed = allowed_navigation(url, &own);
            if !allowed {
                tracing::warn!(webview = webview.label(), %url, "refused to navigate away from the app");
            }
            allowed
        })
        .build()
}
