import { call } from "./call";
import type { ConfigProblem, Mode, Overview, Page } from "./generated/types";

export type { ConfigProblem, Mode, Page };
/** What is set up: the first-run screen, the config banner and the status bar read it. */
export type AppInfo = Overview;

export function getAppInfo(): Promise<AppInfo> {
  return call("app_info");
}

/** Opens a web or mail link from an answer in the system browser. */
export const openLink = (url: string) => call("open_link", { url });

/** Calls `open` when the app asks the window for a page (a click on a notification: "Download a
 * model", "Open Settings"); resolves to an unsubscribe. */
export async function onOpenPage(open: (page: Page) => void): Promise<() => void> {
  const { listen } = await import("@tauri-apps/api/event");
  return listen<Page>("open-page", (e) => {
    if (e.payload === "models" || e.payload === "settings") open(e.payload);
  });
}
