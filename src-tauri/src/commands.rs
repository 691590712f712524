//! Tauri commands: one line each, delegating to the crate that owns the behaviour. Answers
//! stream over a `tauri::ipc::Channel`; the command returns the stored answer when it ends.

use tauri::ipc::Channel;
use tauri::State;
use understudy_conversations::TurnEvent;
use understudy_core::{Overview, Settings};
use understudy_router::{health, ConnectionReport, HealthSnapshot};
use understudy_store::export::{self, Format};
use understudy_store::{Backend, Conversation, Hit, Message};

use crate::setup::{GatewayAccess, ProviderView, SettingsView, Setup};
use crate::{IpcCode, IpcError};

type Res<T> = Result<T, IpcError>;

/// Forwards turn events to the window; a closed window does not stop the answer being saved.
fn sink(channel: Channel<TurnEvent>) -> impl FnMut(TurnEvent) + Send {
    move |e| {
        let _ = channel.send(e);
    }
}

/// What is set up: drives the first-run screen, the config banner and the status bar.
#[tauri::command]
pub fn app_info(setup: State<'_, Setup>) -> Overview {
    setup.overview()
}

/// What opening the history found wrong at start (damaged, newer, locked): the window's notice.
#[tauri::command]
pub fn store_notice(setup: State<'_, Setup>) -> Option<understudy_store::StoreNotice> {
    setup.store_notice.lock().expect("store notice").clone()
}

/// The user has read the notice: a rebuilt window does not show it again.
#[tauri::command]
pub fn dismiss_store_notice(setup: State<'_, Setup>) {
    setup.store_notice.lock().expect("store notice").take();
}

/// Stores the OpenAI API key from the first-run screen or Settings; says where it went.
#[tauri::command]
pub fn save_api_key(setup: State<'_, Setup>, key: String) -> Res<Backend> {
    setup.save_api_key(&key)
}

#[tauri::command]
pub fn get_settings(setup: State<'_, Setup>) -> SettingsView {
    setup.settings()
}

#[tauri::command]
pub fn save_settings(setup: State<'_, Setup>, settings: Settings) -> Res<SettingsView> {
    setup.save_settings(&settings)
}

/// The in-app gateway's token and the OPENAI_BASE_URL / OPENAI_API_KEY lines for other tools.
#[tauri::command]
pub fn gateway_access(setup: State<'_, Setup>) -> Res<GatewayAccess> {
    setup.gateway_access()
}

#[tauri::command]
pub async fn test_connection(setup: State<'_, Setup>) -> Res<ConnectionReport> {
    Ok(setup.conversations.router().test_connection(None).await?)
}

/// The presets Settings → Providers offers (typed data from `core::providers`).
#[tauri::command]
pub fn provider_presets() -> &'static [understudy_core::providers::Preset] {
    understudy_core::providers::PRESETS
}

#[tauri::command]
pub fn get_providers(setup: State<'_, Setup>) -> Res<Vec<ProviderView>> {
    setup.providers()
}

#[tauri::command]
pub fn save_providers(setup: State<'_, Setup>, providers: Vec<understudy_core::settings::ProviderEntry>) -> Res<Vec<ProviderView>> {
    setup.save_providers(&providers)
}

#[tauri::command]
pub fn save_provider_key(setup: State<'_, Setup>, id: String, key: String) -> Res<Vec<ProviderView>> {
    setup.save_provider_key(&id, &key)
}

/// The environment variables allowed as `env:NAME` keys (the app's own setting).
#[tauri::command]
pub fn get_key_env_allowed(setup: State<'_, Setup>) -> Vec<String> {
    setup.key_env_allowed()
}

#[tauri::command]
pub fn set_key_env_allowed(setup: State<'_, Setup>, names: Vec<String>) -> Res<Vec<ProviderView>> {
    setup.set_key_env_allowed(&names)
}

/// The Test button of one provider: `GET /models`, with its latency.
#[tauri::command]
pub async fn test_provider(setup: State<'_, Setup>, id: String) -> Res<ConnectionReport> {
    Ok(setup.conversations.router().test_connection(Some(&id)).await?)
}

#[tauri::command]
pub async fn provider_models(setup: State<'_, Setup>, id: String) -> Res<Vec<String>> {
    Ok(setup.conversations.router().provider_models(&id).await?)
}

#[tauri::command]
pub fn list_conversations(setup: State<'_, Setup>) -> Res<Vec<Conversation>> {
    Ok(setup.conversations.list()?)
}

#[tauri::command]
pub fn create_conversation(setup: State<'_, Setup>) -> Res<Conversation> {
    Ok(setup.conversations.create()?)
}

#[tauri::command]
pub fn rename_conversation(setup: State<'_, Setup>, id: i64, title: String) -> Res<()> {
    Ok(setup.conversations.with_store(|s| s.rename_conversation(id, title.trim()))?)
}

#[tauri::command]
pub fn set_conversation_options(setup: State<'_, Setup>, id: i64, system_prompt: Option<String>, model: Option<String>) -> Res<Conversation> {
    Ok(setup
        .conversations
        .with_store(|s| s.set_system_prompt(id, system_prompt.as_deref()).and(s.set_conversation_model(id, model.as_deref())).and(s.conversation(id)))?)
}

#[tauri::command]
pub fn delete_conversation(setup: State<'_, Setup>, id: i64) -> Res<()> {
    Ok(setup.conversations.with_store(|s| s.delete_conversation(id))?)
}

#[tauri::command]
pub fn restore_conversation(setup: State<'_, Setup>, id: i64) -> Res<()> {
    Ok(setup.conversations.with_store(|s| s.restore_conversation(id))?)
}

#[tauri::command]
pub fn search_messages(setup: State<'_, Setup>, query: String) -> Res<Vec<Hit>> {
    Ok(setup.conversations.with_store(|s| s.search(&query, 50))?)
}

#[tauri::command]
pub fn get_messages(setup: State<'_, Setup>, id: i64) -> Res<Vec<Message>> {
    Ok(setup.conversations.messages(id)?)
}

#[tauri::command]
pub async fn send_message(setup: State<'_, Setup>, id: i64, text: String, channel: Channel<TurnEvent>) -> Res<Message> {
    Ok(setup.conversations.send(id, &text, sink(channel)).await?)
}

#[tauri::command]
pub async fn regenerate(setup: State<'_, Setup>, id: i64, provider: Option<String>, channel: Channel<TurnEvent>) -> Res<Message> {
    Ok(setup.conversations.regenerate(id, provider, sink(channel)).await?)
}

/// Start at login, start minimized, notifications on/off.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct DesktopPrefs {
    pub start_at_login: bool,
    pub start_minimized: bool,
}

#[tauri::command]
pub fn get_desktop_prefs(app: tauri::AppHandle, setup: State<'_, Setup>) -> DesktopPrefs {
    use tauri_plugin_autostart::ManagerExt;
    DesktopPrefs { start_at_login: app.autolaunch().is_enabled().unwrap_or(false), start_minimized: setup.start_minimized() }
}

#[tauri::command]
pub fn set_desktop_prefs(app: tauri::AppHandle, setup: State<'_, Setup>, prefs: DesktopPrefs) -> Res<DesktopPrefs> {
    use tauri_plugin_autostart::ManagerExt;
    let login = app.autolaunch();
    (if prefs.start_at_login { login.enable() } else { login.disable() }).map_err(|e| IpcError::new(IpcCode::Autostart, e))?;
    setup.set_start_minimized(prefs.start_minimized)?;
    Ok(get_desktop_prefs(app, setup))
}

/// Streams provider health to the window: now, then every change.
#[tauri::command]
pub fn watch_health(setup: State<'_, Setup>, channel: Channel<HealthSnapshot>) {
    tauri::async_runtime::spawn(health::forward(setup.conversations.router().health(), move |s| channel.send(s).is_ok()));
}

#[tauri::command]
pub async fn edit_and_resend(setup: State<'_, Setup>, message_id: i64, text: String, channel: Channel<TurnEvent>) -> Res<Message> {
    Ok(setup.conversations.edit_and_resend(message_id, &text, sink(channel)).await?)
}

/// Stop: the answer ends at once with its text so far saved.
#[tauri::command]
pub fn stop_answer(setup: State<'_, Setup>, id: i64) -> bool {
    setup.conversations.stop(id)
}

/// Saves the conversation into the Downloads folder; returns the file's path.
#[tauri::command]
pub fn export_conversation(setup: State<'_, Setup>, id: i64, format: Format) -> Res<std::path::PathBuf> {
    setup
        .conversations
        .with_store(|s| Ok((s.conversation(id)?, s.messages(id)?)))
        .map_err(IpcError::from)
        .and_then(|(c, m)| export::save(&setup.paths().exports_dir(), &c, &m, format).map_err(|e| IpcError::new(IpcCode::Io, e)))
}

/// The Models page's contents.
#[tauri::command]
pub fn models_overview(setup: State<'_, Setup>) -> understudy_models::library::Shelf {
    setup.models()
}

/// Hugging Face (or `HF_ENDPOINT`) GGUF repositories matching `query`.
#[tauri::command]
pub async fn models_search(setup: State<'_, Setup>, query: String) -> Res<Vec<understudy_models::hf::Repo>> {
    let hub = understudy_models::hf::Hub::new(setup.services.hf_endpoint());
    hub.search(&query, 30).await.map_err(|e| IpcError::new(IpcCode::Hub, e))
}

/// A repository's .gguf files with sizes and quantizations.
#[tauri::command]
pub async fn models_files(setup: State<'_, Setup>, repo: String) -> Res<Vec<understudy_models::hf::RepoFile>> {
    let hub = understudy_models::hf::Hub::new(setup.services.hf_endpoint());
    hub.files(&repo).await.map_err(|e| IpcError::new(IpcCode::Hub, e))
}

/// Downloads (or resumes) a catalog id or owner/repo/file.gguf; progress over the channel.
/// A file no sha256 is known for ends in `Event::Unverified` unless `allow_unverified` (the
/// user confirmed).
#[tauri::command]
pub async fn models_download(
    setup: State<'_, Setup>,
    id: String,
    allow_unverified: Option<bool>,
    on_event: Channel<understudy_models::manager::Event>,
) -> Res<understudy_models::manager::Event> {
    let source = understudy_models::catalog::resolve(&understudy_models::catalog::Catalog::builtin(), &id).map_err(|e| IpcError::new(IpcCode::ModelId, e))?;
    let options = understudy_models::manager::PullOptions { allow_unverified: allow_unverified.unwrap_or(false) };
    Ok(setup.downloads.pull(&source, setup.services.hf_endpoint(), options, |e| drop(on_event.send(e))).await)
}

#[tauri::command]
pub fn models_pause(setup: State<'_, Setup>, name: String) -> Res<bool> {
    setup.downloads.pause(&name).map_err(|e| IpcError::new(IpcCode::ModelId, e))
}

#[tauri::command]
pub fn models_cancel(setup: State<'_, Setup>, name: String) -> Res<bool> {
    setup.downloads.cancel(&name).map_err(|e| IpcError::new(IpcCode::ModelId, e))
}

/// Uses a .gguf file in place (drag and drop, or the file field).
#[tauri::command]
pub fn models_import(setup: State<'_, Setup>, path: String) -> Res<String> {
    let lib = understudy_models::library::Library::new(setup.paths().models_dir());
    lib.import(std::path::Path::new(&path)).map(|p| p.display().to_string()).map_err(|e| IpcError::new(IpcCode::Import, e))
}

/// Deletes a downloaded model or forgets an imported one.
#[tauri::command]
pub fn models_remove(setup: State<'_, Setup>, id: String) -> Res<()> {
    let lib = understudy_models::library::Library::new(setup.paths().models_dir());
    lib.remove(&understudy_models::catalog::Catalog::builtin(), &id).map(drop).map_err(|e| IpcError::new(IpcCode::Remove, e))
}

/// Makes a model the offline fallback.
#[tauri::command]
pub fn models_choose(setup: State<'_, Setup>, id: String) -> Res<SettingsView> {
    setup.choose_model(&id)
}

/// Opens a link from an answer in the system browser (after the user clicked it); only what
/// `core::links::external_link` allows: a `file:` or custom-scheme URL from model output is refused.
#[tauri::command]
pub fn open_link(app: tauri::AppHandle, url: String) -> Res<()> {
    use tauri_plugin_opener::OpenerExt;
    let link = understudy_core::links::external_link(&url).map_err(|e| IpcError::new(IpcCode::Link, e))?;
    app.opener().open_url(link, None::<&str>).map_err(|e| IpcError::new(IpcCode::Link, e))
}

/// The window's own snapshot (open conversation, scroll, draft), kept while its web view is
/// released; `ui_state_load` also hands over a page a notification asked for.
#[tauri::command]
pub fn ui_state_save(shell: State<'_, crate::window::Shell>, state: String) -> Res<()> {
    shell.save_ui_state(state)
}

#[tauri::command]
pub fn ui_state_load(shell: State<'_, crate::window::Shell>) -> crate::window::UiState {
    shell.ui_state()
}
