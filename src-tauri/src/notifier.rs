//! Desktop notifications: sends what `alerts::Notifier` decides from the health watch through
//! notify-rust, replacing a slot's earlier notification in place. Works without a notification
//! server (warns once).

use std::collections::HashMap;
use std::time::Duration;

use tauri::{AppHandle, Manager};
use understudy_alerts::{Notifier, NotifierConfig, Slot};

use crate::setup::Setup;

/// The event that tells the window which page to show (payload: an `alerts::Page`); ui/src/api/app.ts.
pub const OPEN_PAGE: &str = "open-page";

pub fn start(app: &AppHandle, cfg: NotifierConfig) {
    let setup = app.state::<Setup>();
    let mut health = setup.conversations.router().health();
    // Settings publishes its writes here; the switch applies at once.
    let config = setup.services.config();
    let app = app.clone();
    let start = tokio::time::Instant::now();
    tauri::async_runtime::spawn(async move {
        let mut notifier = Notifier::new(cfg);
        let mut ids: HashMap<Slot, u32> = HashMap::new();
        let mut warned = false;
        loop {
            let snapshot = health.borrow_and_update().clone();
            let notices = notifier.update(start.elapsed(), &snapshot);
            let enabled = config.borrow().config.notifications.enabled;
            for notice in notices.into_iter().filter(|_| enabled) {
                let mut n = notify_rust::Notification::new();
                n.appname("Understudy").summary(&notice.summary).body(&notice.body).icon("dialog-information");
                if notice.replace {
                    if let Some(id) = ids.get(&notice.slot) {
                        n.id(*id);
                    }
                }
                // A click on the notification ("default") opens the window, on the notice's page
                // if it has one; that page also gets a button where the server shows actions.
                n.action("default", "Open Understudy");
                if let Some(page) = notice.opens {
                    n.action(page.name(), page.action_label());
                }
                match n.show_async().await {
                    Ok(handle) => {
                        tracing::info!(slot = ?notice.slot, summary = %notice.summary, "notification sent");
                        ids.insert(notice.slot, handle.id());
                        let (app, opens) = (app.clone(), notice.opens);
                        // Blocks until the notification is acted on or closed.
                        std::thread::spawn(move || {
                            handle.wait_for_action(|action| {
                                if action == "__closed" {
                                    return;
                                }
                                match opens {
                                    Some(page) => crate::window::show_page(&app, page),
                                    None => {
                                        crate::window::show(&app);
                                    }
                                }
                            })
                        });
                    }
                    Err(e) if !warned => {
                        warned = true;
                        tracing::warn!("no desktop notifications (is a notification server running?): {e}");
                    }
                    Err(_) => {}
                }
            }
            // Recovery is announced by time alone (closed for `recovery_after`): re-check often.
            tokio::select! {
                changed = health.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    });
}
