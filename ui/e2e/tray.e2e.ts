// The tray and the notifications of the real app, read the way a desktop reads them: the
// StatusNotifierItem and dbusmenu D-Bus interfaces for the tray, dunst's history for
// notifications. An outage is made at the upstream (llmock), never simulated in the app.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { click, closeWindow, iconFill, item, menu, notificationsFromNow, pidOf, registered, sh, sleep, until, visibleWindows, type Notification } from "./desktop";
import { launchApp, outDir, screenshot } from "./driver";

const llmock = process.env.UNDERSTUDY_E2E_LLMOCK ?? "";
let browser: WebdriverIO.Browser;

/** Whether a process still runs (a zombie waiting for its parent does not). */
const alive = (pid: string) => existsSync(`/proc/${pid}/stat`) && !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));


/** This suite's notifications (set before the app starts). */
let notifications: () => Notification[];

beforeAll(async () => {
  // Only this suite's notifications count: earlier suites' ones are closed and forgotten.
  await sleep(500);
  notifications = notificationsFromNow();
  browser = await launchApp();
});
afterAll(async () => {
  // The last test quits the app from the tray, so the session may have nothing left to end.
  await browser?.deleteSession().catch(() => {});
});

describe.skipIf(!llmock)("tray and notifications", () => {
  let sni: [string, string];

  it("shows the state in the tray: icon and the first menu item", async () => {
    await browser.$('[data-testid="message-area"]').waitForDisplayed({ timeout: 30_000 });
    sni = await until("the tray item on D-Bus", item);
    const labels = await until("a healthy tray", () => {
      const m = menu(sni);
      return m[0].startsWith("OpenAI is healthy") ? m : undefined;
    });
    expect(labels).toEqual(["OpenAI is healthy — answering with OpenAI", "---", "Open Understudy", "Mode", "Retry OpenAI now", "Open status page", "---", "Quit Understudy"]);
    expect(iconFill(sni)).toMatch(/^s?rgba?\(22,163,74/);
  });

  it("an outage turns the tray red and sends exactly one notification", async () => {
    await fetch(`${llmock}/_llmock/scenario`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ behaviors: [{ type: "fail", status: 503, times: 1000 }] }) });
    const label = await until("the outage in the tray", () => {
      const m = menu(sni)[0];
      return m.startsWith("OpenAI unreachable since") ? m : undefined;
    });
    expect(label).toMatch(/— answering with tiny-llama/);
    expect(iconFill(sni)).toMatch(/^s?rgba?\(220,38,38/);
    await sleep(3_000); // more failed probes: still one notification
    const shown = notifications();
    expect(shown.map((n) => n.summary)).toEqual(["OpenAI is unreachable (OpenAI had a server error (503))"]);
    expect(shown[0].body).toMatch(/^Answering with tiny-llama.* until it is back\.$/);
  });

  it("recovery: green again after the hold, and exactly one recovery notification", async () => {
    await fetch(`${llmock}/_llmock/reset`, { method: "POST" });
    await until("a healthy tray again", () => (menu(sni)[0].startsWith("OpenAI is healthy") ? true : undefined), 30_000);
    expect(iconFill(sni)).toMatch(/^s?rgba?\(22,163,74/);
    const shown = await until("the recovery notification", () => {
      const n = notifications();
      return n.length >= 2 ? n : undefined;
    });
    expect(shown.map((n) => n.summary)).toEqual(["OpenAI is unreachable (OpenAI had a server error (503))", "OpenAI is back"]);
    // The tray area as a test artifact (gtk-sni-tray-standalone sits at the bottom edge).
    sh("import", ["-window", "root", "-crop", "1280x48+0+752", join(outDir, "tray.png")]);
    await screenshot("tray-window.png");
  });

  it("the Mode menu switches to local only: blue, in words, and back", async () => {
    click(sni, "Local only");
    await until("local only in the tray", () => (menu(sni)[0].startsWith("Local only — answering with tiny-llama") ? true : undefined));
    expect(iconFill(sni)).toMatch(/^s?rgba?\(37,99,235/);
    await browser.waitUntil(async () => (await browser.$('[data-testid="status-health"]').getText()) === "Answering locally by choice", { timeout: 10_000 });
    click(sni, "Auto");
    await until("auto again", () => (menu(sni)[0].startsWith("OpenAI is healthy") ? true : undefined));
  });

  it("a second launch hands over to the running app and exits", async () => {
    const t0 = Date.now();
    execFileSync(process.env.UNDERSTUDY_APP_BIN!, [], { timeout: 15_000, stdio: "ignore" });
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(await browser.getTitle()).toBe("Understudy");
    expect(item()).toEqual(sni);
  });

  it("Start at login registers a login item that starts Understudy in the tray", async () => {
    // auto-launch writes ~/.config/autostart (not $XDG_CONFIG_HOME); session.sh gives this
    // suite its own HOME so a test never touches the real login items.
    const dir = join(process.env.HOME ?? "/nonexistent", ".config", "autostart");
    expect(process.env.HOME).toContain("understudy-e2e");
    await browser.$('[data-testid="open-settings"]').click();
    const box = await browser.$('[data-testid="start-at-login"]');
    await box.waitForDisplayed({ timeout: 10_000 });
    expect(await box.isSelected()).toBe(false);
    await box.click();
    await browser.$('[data-testid="start-minimized"]').click();
    const entry = await until("the login item", () => (existsSync(dir) ? readdirSync(dir).find((f) => f.endsWith(".desktop")) : undefined), 10_000);
    expect(readFileSync(join(dir, entry), "utf8")).toMatch(/Exec=.*understudy-app.*--autostart/);
    // "Stay in the tray" is a setting like the others: `[tray] start_minimized` in config.toml.
    const config = () => readFileSync(process.env.UNDERSTUDY_E2E_CONFIG!, "utf8");
    await until("start_minimized in config.toml", () => (/^start_minimized = true$/m.test(config()) ? true : undefined), 10_000);
    expect(config()).toMatch(/^\[tray\]\nhold = "2s"\nstart_minimized = true$/m);
    await box.click();
    await until("the login item removed", () => (readdirSync(dir).some((f) => f.endsWith(".desktop")) ? undefined : true), 10_000);
  });

  it("closing the window hides it to the tray, where Open Understudy brings it back", async () => {
    const pid = String(pidOf(sni[0])); // the app itself (its local-model worker has the same name)
    const [win] = visibleWindows();
    expect(win).toBeDefined();
    const visibility = () => browser.execute(() => document.visibilityState);
    expect(await visibility()).toBe("visible");
    // The window manager's close button: WM_DELETE_WINDOW to the app's window.
    closeWindow(win);
    await until("the window hidden", () => (visibleWindows().length === 0 ? true : undefined), 10_000);
    await sleep(500);
    expect(alive(pid)).toBe(true);
    expect(await visibility()).toBe("hidden"); // the page itself knows
    expect(menu(sni)[0]).toMatch(/^OpenAI is /); // the tray still watches OpenAI
    click(sni, "Open Understudy");
    await until("the window shown again", () => (visibleWindows().length === 1 ? true : undefined), 10_000);
    expect(await browser.getTitle()).toBe("Understudy");
    expect(await visibility()).toBe("visible");
  });

  it("Quit ends the app, and launching it again right away opens it", async () => {
    const old = String(pidOf(sni[0]));
    click(sni, "Quit Understudy");
    // At once, as a user who quits and reopens does: while the old app may still be exiting.
    const again = spawn(process.env.UNDERSTUDY_APP_BIN!, [], { stdio: "ignore" });
    let exited: number | null | undefined;
    again.on("exit", (code) => (exited = code));
    try {
      await until("the old app gone", () => (alive(old) ? undefined : true), 10_000);
      // The new one did not hand over to the dying one: it runs and shows its tray icon.
      await until("the new app's tray icon", () => (registered().some((bus) => pidOf(bus) === again.pid) ? true : undefined));
      expect(exited).toBeUndefined();
    } finally {
      again.kill();
    }
  });
});
