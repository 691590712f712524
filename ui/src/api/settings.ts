import { call } from "./call";

/** Where a saved secret went (Rust: understudy_store::Backend). */
export type SavedKey = { kind: "keyring" } | { kind: "file"; path: string; why: string };

/** Stores the OpenAI API key in the system keyring (or a file only the user can read). */
export function saveApiKey(key: string): Promise<SavedKey> {
  return call<SavedKey>("save_api_key", { key });
}
