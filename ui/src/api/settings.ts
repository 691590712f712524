import { call } from "./call";
import type { Backend, ConnectionReport, DesktopPrefs, GatewayAccess, GatewayView, Settings, SettingsView } from "./generated/types";

// Generated from the Rust types (src-tauri/src/ts.rs).
export type { ConnectionReport, DesktopPrefs, GatewayAccess, GatewayView, Settings, SettingsView };

/** Where a saved secret went. */
export type SavedKey = Backend;

/** Stores the OpenAI API key in the system keyring (or a file only the user can read). */
export function saveApiKey(key: string): Promise<SavedKey> {
  return call("save_api_key", { key });
}

export const getSettings = () => call("get_settings");
/** The gateway's token (made and kept in the secret store on first use) and the env lines. */
export const gatewayAccess = () => call("gateway_access");
export const saveSettings = (settings: Settings) => call("save_settings", { settings });
/** Resolves with the report, or rejects with ApiError whose code is the failure class. */
export const testConnection = () => call("test_connection");
export const getDesktopPrefs = () => call("get_desktop_prefs");
export const setDesktopPrefs = (prefs: DesktopPrefs) => call("set_desktop_prefs", { prefs });
