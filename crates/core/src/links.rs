//! Where the app's webviews may go: the rule the desktop shell's navigation guard applies to
//! every navigation (a link, an image map, a form, `location = …`, a `<meta>` refresh). Only
//! the app's own pages; answers' web links open in the system browser instead.

use url::Url;

/// The origin Tauri serves the app's pages from on this platform: its own scheme, or plain
/// http on a `.localhost` host where the webview cannot register one.
pub fn app_origin() -> Url {
    let origin = if cfg!(any(windows, target_os = "android")) { "http://tauri.localhost" } else { "tauri://localhost" };
    Url::parse(origin).unwrap_or_else(|e| unreachable!("{origin}: {e}"))
}

/// Whether a webview may go to `url`: only to a page of one of the app's own origins (same
/// scheme, host and port), never to the web, a file, `data:`, `blob:` or `about:`.
pub fn allowed_navigation(url: &Url, own: &[Url]) -> bool {
    own.iter().any(|o| o.scheme() == url.scheme() && o.host_str() == url.host_str() && o.port_or_known_default() == url.port_or_known_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(list: &[&str]) -> Vec<Url> {
        list.iter().map(|u| Url::parse(u).unwrap_or_else(|e| panic!("{u}: {e}"))).collect()
    }

    #[test]
    fn only_the_app_s_own_origin_is_allowed() {
        let linux = urls(&["tauri://localhost"]);
        let windows = urls(&["http://tauri.localhost"]);
        let dev = urls(&["tauri://localhost", "http://localhost:1420/"]);
        let table: &[(&[Url], &str, bool)] = &[
            (&linux, "tauri://localhost", true),
            (&linux, "tauri://localhost/index.html", true),
            (&linux, "tauri://localhost/#/settings", true),
            (&linux, "https://evil.example/login", false),
            (&linux, "http://evil.example/", false),
            (&linux, "tauri://localhost.evil.example/", false),
            (&linux, "tauri://evil.example/", false),
            (&linux, "tauri://localhost:8080/", false),
            (&linux, "http://tauri.localhost/", false),
            (&linux, "http://localhost:1420/", false),
            (&linux, "file:///etc/passwd", false),
            (&linux, "data:text/html,<h1>Sign in again</h1>", false),
            (&linux, "blob:tauri://localhost/1b4e28ba-2fa1-11d2-883f-0016d3cca427", false),
            (&linux, "about:blank", false),
            (&linux, "javascript:alert(1)", false),
            (&linux, "mailto:a@example.com", false),
            (&linux, "ipc://localhost/app_info", false),
            (&windows, "http://tauri.localhost/index.html", true),
            (&windows, "http://tauri.localhost:80/", true),
            (&windows, "https://tauri.localhost/", false),
            (&windows, "http://tauri.localhost:8080/", false),
            (&windows, "http://ipc.localhost/", false),
            (&windows, "tauri://localhost/", false),
            (&dev, "http://localhost:1420/src/App.svelte", true),
            (&dev, "tauri://localhost/", true),
            (&dev, "http://localhost:1421/", false),
            (&dev, "https://localhost:1420/", false),
            (&dev, "http://127.0.0.1:1420/", false),
        ];
        for (own, url, want) in table {
            assert_eq!(allowed_navigation(&Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}")), own), *want, "{url} with the app at {own:?}");
        }
    }

    #[test]
    fn the_app_s_origin_is_the_one_tauri_serves_it_from() {
        let page = if cfg!(any(windows, target_os = "android")) { "http://tauri.localhost/index.html" } else { "tauri://localhost/index.html" };
        assert!(allowed_navigation(&Url::parse(page).unwrap_or_else(|e| panic!("{e}")), &[app_origin()]));
        assert!(!allowed_navigation(&Url::parse("https://evil.example/").unwrap_or_else(|e| panic!("{e}")), &[app_origin()]));
    }
}
