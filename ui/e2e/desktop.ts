// The headless desktop around the app, as the e2e suites read and drive it: X windows
// (xdotool, and a window manager's close request), dunst's notifications, shell commands.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
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

// The tray, read and clicked the way a panel does: StatusNotifierItem and dbusmenu over D-Bus.

/** The app's StatusNotifierItem: [bus name, object path]. The watcher lists "bus" or
 * "bus/path"; libayatana's item lives under /org/ayatana/NotificationItem/. */
export function item(): [string, string] | undefined {
  const out = JSON.parse(sh("busctl", ["--user", "--json=short", "get-property", "org.kde.StatusNotifierWatcher", "/StatusNotifierWatcher", "org.kde.StatusNotifierWatcher", "RegisteredStatusNotifierItems"]));
  for (const entry of out.data as string[]) {
    const slash = entry.indexOf("/");
    const bus = slash < 0 ? entry : entry.slice(0, slash);
    const paths = sh("busctl", ["--user", "--list", "tree", bus]).split("\n").map((l) => l.trim());
    const path = slash >= 0 ? entry.slice(slash) : paths.find((p) => p.includes("NotificationItem") && p.includes("understudy") && !p.endsWith("/Menu"));
    if (path) return [bus, path];
  }
  return undefined;
}

/** The colour of the tray icon's fill (a pixel left of centre, off every glyph). */
export function iconFill([bus, path]: [string, string]): string {
  const png = JSON.parse(sh("busctl", ["--user", "--json=short", "get-property", bus, path, "org.kde.StatusNotifierItem", "IconName"])).data as string;
  const file = png.endsWith(".png") ? png : `${png}.png`;
  return sh("convert", [file, "-format", "%[pixel:p{6,16}]", "info:"]).trim();
}

/** Bus names of every registered StatusNotifierItem. */
export function registered(): string[] {
  const out = JSON.parse(sh("busctl", ["--user", "--json=short", "get-property", "org.kde.StatusNotifierWatcher", "/StatusNotifierWatcher", "org.kde.StatusNotifierWatcher", "RegisteredStatusNotifierItems"]));
  return (out.data as string[]).map((e) => e.split("/")[0]);
}

/** The process behind a D-Bus connection. */
export function pidOf(bus: string): number | undefined {
  try {
    const out = execFileSync("busctl", ["--user", "--json=short", "call", "org.freedesktop.DBus", "/", "org.freedesktop.DBus", "GetConnectionUnixProcessID", "s", bus], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    return JSON.parse(out).data[0] as number;
  } catch {
    return undefined; // gone meanwhile
  }
}

/** Labels of the tray menu's top-level items, in order. */
export function menu([bus, path]: [string, string]): string[] {
  const out = JSON.parse(sh("busctl", ["--user", "--json=short", "call", bus, `${path}/Menu`, "com.canonical.dbusmenu", "GetLayout", "iias", "--", "0", "-1", "0"]));
  const [, [, , children]] = out.data;
  return (children as { data: [number, Record<string, { data: unknown }>, unknown[]] }[]).map((c) => String(c.data[1].label?.data ?? (c.data[1].type?.data === "separator" ? "---" : "")));
}

/** Clicks the (sub)menu item labelled `label`, as a panel does over dbusmenu. */
export function click([bus, path]: [string, string], label: string) {
  const out = JSON.parse(sh("busctl", ["--user", "--json=short", "call", bus, `${path}/Menu`, "com.canonical.dbusmenu", "GetLayout", "iias", "--", "0", "-1", "0"]));
  type Node = { data: [number, Record<string, { data: unknown }>, Node[]] };
  const find = (nodes: Node[]): number | undefined => {
    for (const n of nodes) {
      if (n.data[1].label?.data === label) return n.data[0];
      const inner = find(n.data[2]);
      if (inner !== undefined) return inner;
    }
    return undefined;
  };
  const id = find(out.data[1][2]);
  if (id === undefined) throw new Error(`no menu item ${label}`);
  sh("busctl", ["--user", "call", bus, `${path}/Menu`, "com.canonical.dbusmenu", "Event", "isvu", "--", String(id), "clicked", "s", "", "0"]);
}

/** The processes whose parent is `pid`: [pid, name] each (the kernel cuts names to 15 characters). */
export function children(pid: number): [number, string][] {
  const out: [number, string][] = [];
  for (const p of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const m = /^\d+ \((.*)\) \S+ (\d+)/.exec(readFileSync(`/proc/${p}/stat`, "utf8"));
      if (m && Number(m[2]) === pid) out.push([Number(p), m[1]]);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Proportional set size of `pid` in kB (/proc/PID/smaps_rollup), 0 when gone. */
export function pss(pid: number): number {
  try {
    return Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** CPU time used so far by `pid` in clock ticks (utime + stime; 100 a second on Linux), 0 when gone. */
export function cpuTicks(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /, "").split(" ");
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}
