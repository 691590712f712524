//! The main window's life: closed to the tray it is hidden, and after `[tray] release_after`
//! hidden its web view is destroyed (WebKit's processes exit); opening it again rebuilds it from
//! tauri.conf.json's window entry (same label, so the same capability). When to release is
//! `alerts::window::Release`'s call; what the page showed lives here meanwhile (`ui_state_*`).

use std::sync::Mutex;
use std::time::Duration;

use tauri::{AppHandle, Manager};
use understudy_alerts::window::{Release, Step};
use understudy_alerts::Page;

pub const MAIN: &str = "main";

/// Renders the page without WebKit's GPU compositing, unless the user's environment says
/// otherwise. A chat page gains nothing from it, and it is most of the web process: measured
/// under Xvfb (llvmpipe), the open window's WebKitWebProcess is 190 MB PSS with it and 115 MB
/// without (62 MB of compositing buffers), which puts the whole app at about a bare Tauri
/// window's footprint (`cargo xtask bench footprint`). Called first thing, before GTK or any
/// thread starts.
pub fn prefer_cpu_rendering() {
    const VAR: &str = "WEBKIT_DISABLE_COMPOSITING_MODE";
    if cfg!(target_os = "linux") && std::env::var_os(VAR).is_none() {
        std::env::set_var(VAR, "1");
    }
}

/// The largest UI snapshot kept (a draft is typed by hand; anything bigger is refused).
pub const MAX_UI_STATE: usize = 256 * 1024;

#[derive(Debug)]
pub struct Shell {
    release: Mutex<Release>,
    start: tokio::time::Instant,
    /// The page's own snapshot (open conversation, scroll, draft), JSON written by the UI.
    ui_state: Mutex<Option<String>>,
    /// A page the rebuilt window should open (a notification's button), taken once.
    page: Mutex<Option<Page>>,
}

impl Shell {
    pub fn new(grace: Duration) -> Self {
        Shell { release: Mutex::new(Release::new(grace)), start: tokio::time::Instant::now(), ui_state: Mutex::new(None), page: Mutex::new(None) }
    }

    pub fn save_ui_state(&self, state: String) -> Result<(), crate::IpcError> {
        if state.len() > MAX_UI_STATE {
            return Err(crate::IpcError::new(crate::IpcCode::TooLarge, "the window's state is too large to keep"));
        }
        *self.ui_state.lock().unwrap_or_else(|e| e.into_inner()) = Some(state);
        Ok(())
    }

    pub fn ui_state(&self) -> UiState {
        UiState { state: self.ui_state.lock().unwrap_or_else(|e| e.into_inner()).clone(), page: self.page.lock().unwrap_or_else(|e| e.into_inner()).take() }
    }
}

/// What a (re)built window starts from: its own snapshot, and a page a notification asked for.
#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct UiState {
    pub state: Option<String>,
    pub page: Option<Page>,
}

/// Shows the window, rebuilding it if it was released. Returns whether it was rebuilt (then
/// the page has not loaded yet: events sent now are lost).
pub fn show(app: &AppHandle) -> bool {
    let shell = app.state::<Shell>();
    shell.release.lock().unwrap_or_else(|e| e.into_inner()).shown();
    let (w, rebuilt) = match app.get_webview_window(MAIN) {
        Some(w) => (w, false),
        None => match rebuild(app) {
            Ok(w) => (w, true),
            Err(e) => {
                tracing::error!("cannot open the window again: {e}");
                return false;
            }
        },
    };
    let _ = w.show();
    let _ = w.unminimize();
    let _ = w.set_focus();
    rebuilt
}

/// Shows the window on `page` (a notification's button), also when it has to be rebuilt.
pub fn show_page(app: &AppHandle, page: Page) {
    let shell = app.state::<Shell>();
    *shell.page.lock().unwrap_or_else(|e| e.into_inner()) = Some(page);
    if !show(app) {
        // The page is live: tell it now, and drop the note for a later rebuild.
        shell.page.lock().unwrap_or_else(|e| e.into_inner()).take();
        let _ = tauri::Emitter::emit_to(app, MAIN, crate::notifier::OPEN_PAGE, page);
    }
}

fn rebuild(app: &AppHandle) -> tauri::Result<tauri::WebviewWindow> {
    let started = std::time::Instant::now();
    let config = app.config().app.windows.iter().find(|w| w.label == MAIN).cloned().ok_or(tauri::Error::WindowNotFound)?;
    let w = tauri::WebviewWindowBuilder::from_config(app, &config)?.build()?;
    tracing::info!(elapsed = ?started.elapsed(), "window rebuilt");
    Ok(w)
}

/// Hides the window to the tray; its web view goes after the grace period unless shown again.
pub fn hide(app: &AppHandle) {
    if let Some(w) = app.get_webview_window(MAIN) {
        let _ = w.hide();
    }
    let shell = app.state::<Shell>();
    let now = shell.start.elapsed();
    shell.release.lock().unwrap_or_else(|e| e.into_inner()).hidden(now);
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        loop {
            let step = {
                let shell = app.state::<Shell>();
                let now = shell.start.elapsed();
                let step = shell.release.lock().unwrap_or_else(|e| e.into_inner()).check(now);
                step
            };
            match step {
                Step::Keep => return,
                Step::Wait(d) => tokio::time::sleep(d).await,
                Step::Release => {
                    if let Some(w) = app.get_webview_window(MAIN) {
                        if !w.is_visible().unwrap_or(true) {
                            tracing::info!("releasing the hidden window's web view");
                            let _ = w.destroy();
                            #[cfg(target_os = "linux")]
                            page_out_code().await;
                        }
                    }
                    return;
                }
            }
        }
    });
}

/// Lets the kernel take back the code pages the web view touched (WebKit, JavaScriptCore, the GL
/// driver: ~60 MB of this process's PSS after a release, measured). They are clean file pages:
/// reading them again costs a page-cache hit, and in the tray little of them is used. Android
/// does the same to apps sent to the background. Anonymous pages are left alone (no swap).
#[cfg(target_os = "linux")]
async fn page_out_code() {
    // Pages still shared with the exiting web process would be skipped: wait for it (5 s at most).
    for _ in 0..50 {
        if !has_child("WebKitWebProc") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else { return };
    let mut bytes = 0usize;
    for line in maps.lines() {
        // "start-end perms offset dev inode path": only mappings of a file on disk, never written.
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms), Some(path)) = (f.next(), f.next(), f.nth(3)) else { continue };
        if !path.starts_with('/') || perms.contains('w') {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else { continue };
        let (Ok(start), Ok(end)) = (usize::from_str_radix(start, 16), usize::from_str_radix(end, 16)) else { continue };
        // SAFETY: MADV_PAGEOUT on a read-only file mapping changes no memory contents: a page
        // that is needed again is read back from the same file.
        #[allow(unsafe_code)]
        let paged = unsafe { rustix::mm::madvise(start as *mut std::ffi::c_void, end - start, rustix::mm::Advice::LinuxPageOut) };
        if paged.is_ok() {
            bytes += end - start;
        }
    }
    tracing::info!(mapped_mb = bytes >> 20, "code pages of the released web view handed back to the kernel");
}

/// Whether this process has a child whose command name starts with `prefix` (from /proc).
#[cfg(target_os = "linux")]
fn has_child(prefix: &str) -> bool {
    let me = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else { return false };
    dir.flatten().filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))).any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { return false };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split at the last ')'.
        let Some((head, tail)) = stat.rsplit_once(')') else { return false };
        head.split_once('(').is_some_and(|(_, name)| name.starts_with(prefix)) && tail.split_whitespace().nth(1) == Some(me.as_str())
    })
}

pub fn toggle(app: &AppHandle) {
    match app.get_webview_window(MAIN) {
        Some(w) if w.is_visible().unwrap_or(false) => hide(app),
        _ => {
            show(app);
        }
    }
}
