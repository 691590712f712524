//! Where links may lead. The app's webviews: only to the app's own pages, the rule the desktop
//! shell's navigation guard applies to every navigation (a link, an image map, a form,
//! `location = …`, a `<meta>` refresh). An answer's link the user clicked: to the system
//! browser or mail client, and only if it is a web or mail link.

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

/// A link from model output that is not a web or mail link (`file:`, `javascript:`, a custom
/// scheme): it does not leave the app.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("only web and mail links open from answers, not {0:?}")]
pub struct NotExternal(pub String);

/// The link an answer's click may hand to the system (browser or mail client): `http(s):` and
/// `mailto:` only, whatever the case of the scheme; trimmed.
pub fn external_link(url: &str) -> Result<&str, NotExternal> {
    let link = url.trim();
    let lower = link.to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") || lower.starts_with("mailto:") {
        Ok(link)
    } else {
        Err(NotExternal(url.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_web_and_mail_links_leave_the_app() {
        let table: &[(&str, Option<&str>)] = &[
            ("https://example.com/a?b#c", Some("https://example.com/a?b#c")),
            ("  http://example.com/ \n", Some("http://example.com/")),
            ("HTTPS://EXAMPLE.COM/", Some("HTTPS://EXAMPLE.COM/")),
            ("mailto:a@example.com", Some("mailto:a@example.com")),
            ("file:///etc/passwd", None),
            ("javascript:alert(1)", None),
            ("  javascript:alert(1)", None),
            ("data:text/html,<script>alert(1)</script>", None),
            ("vscode://file/etc/passwd", None),
            ("smb://host/share", None),
            ("tauri://localhost/", None),
            ("//example.com/", None),
            ("example.com", None),
            ("https:/example.com", None),
            ("", None),
        ];
        for (url, want) in table {
            assert_eq!(external_link(url).ok(), *want, "{url:?}");
        }
        assert_eq!(external_link("file:///x").unwrap_err().to_string(), "only web and mail links open from answers, not \"file:///x\"");
    }

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
