//! The tray icon: draws what `alerts::Indicator` decides from the router's health watch, and
//! turns menu clicks into calls on the app's services. No policy here.

use std::time::Duration;

use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::{MouseButton, MouseButtonState, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Manager, Wry};
use understudy_alerts::{icon, retry_words, words, Indicator, TrayState};
use understudy_core::config::Mode;

use crate::setup::Setup;

const ICON_PX: u32 = 32;

fn image(state: TrayState) -> Image<'static> {
    Image::new_owned(icon::rgba(state, ICON_PX), ICON_PX, ICON_PX)
}

/// "14:02" today, else the date too.
pub fn clock(unix_ms: u64) -> String {
    use chrono::{Local, TimeZone};
    match Local.timestamp_millis_opt(unix_ms as i64).single() {
        Some(t) if t.date_naive() == Local::now().date_naive() => t.format("%H:%M").to_string(),
        Some(t) => t.format("%b %e %H:%M").to_string(),
        None => "?".into(),
    }
}

pub fn create(app: &AppHandle, hold: Duration) -> tauri::Result<()> {
    let status = MenuItem::with_id(app, "status", "Checking OpenAI…", false, None::<&str>)?;
    let modes = [
        CheckMenuItem::with_id(app, "mode-auto", "Auto", true, false, None::<&str>)?,
        CheckMenuItem::with_id(app, "mode-cloud-only", "Cloud only", true, false, None::<&str>)?,
        CheckMenuItem::with_id(app, "mode-local-only", "Local only", true, false, None::<&str>)?,
    ];
    let mode = Submenu::with_id_and_items(app, "mode", "Mode", true, &[&modes[0], &modes[1], &modes[2]])?;
    let retry = MenuItem::with_id(app, "retry", "Retry OpenAI now", true, None::<&str>)?;
    let menu = Menu::with_items(
        app,
        &[
            &status,
            &PredefinedMenuItem::separator(app)?,
            &MenuItem::with_id(app, "open", "Open Understudy", true, None::<&str>)?,
            &mode,
            &retry,
            &MenuItem::with_id(app, "status-page", "Open status page", true, None::<&str>)?,
            &PredefinedMenuItem::separator(app)?,
            &MenuItem::with_id(app, "quit", "Quit Understudy", true, None::<&str>)?,
        ],
    )?;
    let tray = TrayIconBuilder::with_id("understudy")
        .icon(image(TrayState::Nothing))
        .tooltip("Understudy")
        .menu(&menu)
        .show_menu_on_left_click(false)
        .on_tray_icon_event(|tray, event| {
            if let TrayIconEvent::Click { button: MouseButton::Left, button_state: MouseButtonState::Up, .. } = event {
                crate::window::toggle(tray.app_handle());
            }
        })
        .on_menu_event(on_menu)
        .build(app)?;
    tracing::info!(id = ?tray.id(), "tray icon created");

    // Follow the health watch; a timer releases a held colour when nothing else changes.
    let setup = app.state::<Setup>();
    let mut health = setup.conversations.router().health();
    let start = tokio::time::Instant::now();
    tauri::async_runtime::spawn(async move {
        let mut indicator = Indicator::new(hold);
        loop {
            let snapshot = health.borrow_and_update().clone();
            let now = start.elapsed();
            if let Some(state) = indicator.update(now, &snapshot) {
                let _ = tray.set_icon(Some(image(state)));
                tracing::info!(?state, "tray state");
            }
            let shown = indicator.shown().unwrap_or(TrayState::Nothing);
            let text = words(shown, &snapshot, &clock);
            let _ = status.set_text(&text);
            let _ = tray.set_tooltip(Some(&text));
            let _ = retry.set_text(retry_words(&snapshot));
            for (item, m) in modes.iter().zip([Mode::Auto, Mode::CloudOnly, Mode::LocalOnly]) {
                let _ = item.set_checked(snapshot.mode == m);
            }
            let wait = indicator.next_check(now).filter(|d| !d.is_zero()).unwrap_or(Duration::from_secs(60));
            tokio::select! {
                changed = health.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(wait) => {}
            }
        }
    });
    Ok(())
}

fn on_menu(app: &AppHandle<Wry>, event: tauri::menu::MenuEvent) {
    let setup = app.state::<Setup>();
    match event.id().as_ref() {
        "open" => {
            crate::window::show(app);
        }
        "quit" => {
            // Let go of the single-instance name first: a launch during the teardown below
            // would otherwise hand over to this exiting app and quit too.
            tauri_plugin_single_instance::destroy(app);
            app.exit(0);
        }
        "retry" => {
            let router = setup.conversations.router().clone();
            tauri::async_runtime::spawn(async move { router.probe_now().await });
        }
        "status-page" => setup.open_status_page(app),
        id => {
            let mode = match id {
                "mode-auto" => Mode::Auto,
                "mode-cloud-only" => Mode::CloudOnly,
                "mode-local-only" => Mode::LocalOnly,
                _ => return,
            };
            if let Err(e) = setup.set_mode(mode) {
                tracing::warn!("cannot change the mode from the tray: {e}");
            }
        }
    }
}
