import { call } from "./call";
import type { Mode } from "./app";

/** Where a saved secret went (Rust: understudy_store::Backend). */
export type SavedKey = { kind: "keyring" } | { kind: "file"; path: string; why: string };

/** Stores the OpenAI API key in the system keyring (or a file only the user can read). */
export function saveApiKey(key: string): Promise<SavedKey> {
  return call<SavedKey>("save_api_key", { key });
}

/** Rust: understudy_core::Settings. */
export interface Settings {
  mode: Mode;
  base_url: string;
  model: string;
  local_model: string | null;
  /** Desktop notifications on outage and recovery. */
  notifications: boolean;
  /** Serve the OpenAI-compatible gateway on loopback for other tools. */
  gateway: boolean;
}

/** The in-app gateway: where it listens, or why it does not although enabled. */
export interface GatewayState {
  listen: string;
  running: boolean;
  error: string | null;
}

/** What other tools need to use the in-app gateway (Rust: src-tauri setup::GatewayAccess). */
export interface GatewayAccess {
  base_url: string;
  /** The per-install token; null when `[gateway] require_token = false`. */
  token: string | null;
  /** `OPENAI_BASE_URL=…` and `OPENAI_API_KEY=…`, one per line. */
  env_lines: string;
}

/** This computer's session: start at login (the OS login items), start minimized to the tray. */
export interface DesktopPrefs {
  start_at_login: boolean;
  start_minimized: boolean;
}

export interface SettingsView {
  settings: Settings;
  /** Where the key in use comes from. */
  key: "none" | "env" | "keyring" | "file";
  /** Where a key saved now goes. */
  backend: SavedKey;
  config_path: string;
  gateway: GatewayState;
}

export interface ConnectionReport {
  provider: string;
  label: string;
  latency_ms: number;
  models: number;
  model: string;
  model_listed: boolean;
}

export const getSettings = () => call<SettingsView>("get_settings");
/** The gateway's token (made and kept in the secret store on first use) and the env lines. */
export const gatewayAccess = () => call<GatewayAccess>("gateway_access");
export const saveSettings = (settings: Settings) => call<SettingsView>("save_settings", { settings });
/** Resolves with the report, or rejects with ApiError whose code is the failure class. */
export const testConnection = () => call<ConnectionReport>("test_connection");
export const getDesktopPrefs = () => call<DesktopPrefs>("get_desktop_prefs");
export const setDesktopPrefs = (prefs: DesktopPrefs) => call<DesktopPrefs>("set_desktop_prefs", { prefs });
