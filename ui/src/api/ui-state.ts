import { call } from "./call";
import type { UiState } from "./generated/types";

/** What a (re)built window starts from: its own last snapshot, and a page a notification asked for. */
export type { UiState };

/** Keeps the window's snapshot in the app (it outlives the web view, which is released in the tray). */
export const saveUiState = (state: string) => call("ui_state_save", { state });

export const loadUiState = () => call("ui_state_load");
