//! The main window's life: closed to the tray it is hidden, and after `[tray] release_after`
//! hidden its web view is destroyed and WebKit's processes end; opening it again rebuilds it from
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
    #[cfg(target_os = "linux")]
    automation::follow(&w);
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
                            released(&app).await;
                        }
                    }
                    return;
                }
            }
        }
    });
}

/// What follows a release, once the web process has exited with its view (5 s at most): WebKit's
/// network process is ended, then the code pages are handed back.
#[cfg(target_os = "linux")]
async fn released(app: &AppHandle) {
    gone(WEB_PROCESS, Duration::from_secs(5)).await;
    if app.get_webview_window(MAIN).is_none() {
        end_network_process();
        gone(NETWORK_PROCESS, Duration::from_secs(2)).await;
    }
    page_out_code();
}

/// Children's command names, as the kernel cuts them (15 bytes).
#[cfg(target_os = "linux")]
const WEB_PROCESS: &str = "WebKitWebProces";
#[cfg(target_os = "linux")]
const NETWORK_PROCESS: &str = "WebKitNetworkPr";

/// Waits until no child is named `name`, for `within` at most.
#[cfg(target_os = "linux")]
async fn gone(name: &str, within: Duration) {
    let step = Duration::from_millis(100);
    for _ in 0..(within.as_millis() / step.as_millis()) {
        if children(name).is_empty() {
            return;
        }
        tokio::time::sleep(step).await;
    }
}

/// Ends WebKit's network process (~30 MB) once no web view is left. WebKit keeps it for the
/// web context's lifetime and offers no call to end it (tauri-apps/tauri#14626, wry#590); the
/// context Tauri keeps starts a new one with the next web view, as it does after a crash. The
/// network process holds nothing the app needs meanwhile: the page's state is in the store and
/// the `Shell`.
#[cfg(target_os = "linux")]
fn end_network_process() {
    for pid in children(NETWORK_PROCESS) {
        let Some(pid) = rustix::process::Pid::from_raw(pid) else { continue };
        match rustix::process::kill_process(pid, rustix::process::Signal::TERM) {
            Ok(()) => tracing::info!(pid = pid.as_raw_nonzero().get(), "WebKit's network process ended with the web view"),
            Err(e) => tracing::warn!("cannot end WebKit's network process: {e}"),
        }
    }
}

/// Lets the kernel take back the code pages the web view touched (WebKit, JavaScriptCore, the GL
/// driver: ~60 MB of this process's PSS after a release, measured). They are clean file pages:
/// reading them again costs a page-cache hit, and in the tray little of them is used. Android
/// does the same to apps sent to the background. Anonymous pages are left alone (no swap).
/// Pages still shared with an exiting WebKit process would be skipped, hence after `gone`.
#[cfg(target_os = "linux")]
fn page_out_code() {
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

/// This process's children whose command name starts with `prefix` (from /proc).
#[cfg(target_os = "linux")]
fn children(prefix: &str) -> Vec<i32> {
    let me = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split at the last ')'.
            let (head, tail) = stat.rsplit_once(')')?;
            let named = head.split_once('(').is_some_and(|(_, name)| name.starts_with(prefix));
            (named && tail.split_whitespace().nth(1) == Some(me.as_str())).then_some(pid)
        })
        .collect()
}

/// WebDriver glue, used only when Tauri lets WebDriver drive the app
/// (`TAURI_WEBVIEW_AUTOMATION=true`, which `tauri-driver` sets). Ending the network process ends
/// WebKit's automation session, so a test attaches a new one to the rebuilt window; Tauri hands
/// every new session the first web view it built, which a release destroyed. The handler
/// connected here runs after Tauri's, so the session gets the window's current web view.
#[cfg(target_os = "linux")]
pub mod automation {
    use std::cell::{Cell, RefCell};

    use webkit2gtk::glib::object::{ObjectExt, WeakRef};
    use webkit2gtk::{AutomationSessionExt, WebContextExt, WebViewExt};

    thread_local! {
        static CURRENT: RefCell<WeakRef<webkit2gtk::WebView>> = RefCell::new(WeakRef::new());
        static HOOKED: Cell<bool> = const { Cell::new(false) };
        /// Every view handed to a session. WebKit borrows it and takes a reference when the
        /// session ends: one finalized by then is a use after free (a GLib critical, then a crash
        /// of the app). A destroyed view kept here is a small object; its page is gone.
        static HANDED: RefCell<Vec<webkit2gtk::WebView>> = const { RefCell::new(Vec::new()) };
    }

    /// Makes `window`'s web view the one a new automation session gets.
    pub fn follow(window: &tauri::WebviewWindow) {
        if std::env::var("TAURI_WEBVIEW_AUTOMATION").as_deref() != Ok("true") {
            return;
        }
        let _ = window.with_webview(|platform| {
            let view = platform.inner();
            CURRENT.with(|c| *c.borrow_mut() = view.downgrade());
            if HOOKED.replace(true) {
                return;
            }
            let Some(context) = view.context() else { return };
            context.connect_automation_started(|context, session| {
                let context = context.clone();
                session.connect_create_web_view(None, move |_| {
                    let view = CURRENT.with(|c| c.borrow().upgrade()).unwrap_or_else(|| {
                        // No window now: a view of its own, as WebKit requires one.
                        webkit2gtk::WebView::builder().web_context(&context).is_controlled_by_automation(true).build()
                    });
                    HANDED.with(|h| h.borrow_mut().push(view.clone()));
                    view
                });
            });
        });
    }
}

pub fn toggle(app: &AppHandle) {
    match app.get_webview_window(MAIN) {
        Some(w) if w.is_visible().unwrap_or(false) => hide(app),
        _ => {
            show(app);
        }
    }
}
