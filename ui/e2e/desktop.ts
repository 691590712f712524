// The headless desktop around the app, as the e2e suites read and drive it: X windows
// (xdotool, and a window manager's close request), dunst's notifications, shell commands.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

export const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: "utf8" });
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `f` every 200 ms until it gives a value (a throw counts as not yet: the desktop may be
 * mid-update); fails after `ms`. */
export async function until<T>(what: string, f: () => T | undefined | Promise<T | undefined>, ms = 20_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined) return v;
    } catch {
      // not yet; retry
    }
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** The app's mapped (visible) X windows. */
export function visibleWindows(): string[] {
  try {
    return sh("xdotool", ["search", "--onlyvisible", "--name", "^Understudy$"]).split("\n").filter(Boolean);
  } catch {
    return []; // xdotool exits 1 when nothing matches
  }
}

/** A window manager's close button: WM_DELETE_WINDOW to the X window `win`. */
export function closeWindow(win: string) {
  sh("python3", [fileURLToPath(new URL("../../xtask/e2e/wm_close.py", import.meta.url)), win]);
}

export type Notification = { id: number; app: string; summary: string; body: string };

/** Everything in dunst's history, oldest first (closing notifications moves them there). */
export function history(): Notification[] {
  sh("dunstctl", ["close-all"]);
  const h = JSON.parse(sh("dunstctl", ["history"]));
  return (h.data[0] as { id: { data: number }; appname: { data: string }; summary: { data: string }; body: { data: string } }[])
    .map((n) => ({ id: n.id.data, app: n.appname.data, summary: n.summary.data, body: n.body.data }))
    .reverse();
}

/** From now on: Understudy's notifications since this call (earlier suites' ones left out). */
export function notificationsFromNow(): () => Notification[] {
  const seen = new Set(history().map((n) => n.id));
  return () => history().filter((n) => n.app === "Understudy" && !seen.has(n.id));
}
