// The installed package, started the way a desktop menu starts it: `cargo xtask test` installs
// the freshly built .deb with apt and runs this suite alone (UNDERSTUDY_E2E_ONLY=install) with
// UNDERSTUDY_APP_BIN = the desktop entry's Exec command found on PATH (/usr/bin/understudy-app).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { launchApp, screenshot } from "./driver";
import { sh, until, visibleWindows } from "./desktop";

const app = process.env.UNDERSTUDY_APP_BIN!;
const desktopFile = process.env.UNDERSTUDY_E2E_DESKTOP_FILE!;
const version = process.env.UNDERSTUDY_E2E_VERSION!;

/** One key of the desktop entry's [Desktop Entry] group. */
function entryKey(text: string, key: string): string | undefined {
  return text.split("\n").find((l) => l.startsWith(`${key}=`))?.slice(key.length + 1);
}

let browser: WebdriverIO.Browser;

beforeAll(async () => {
  expect(app).toMatch(/^\/usr\/bin\//);
  expect(existsSync(desktopFile)).toBe(true);
  browser = await launchApp();
});
afterAll(async () => {
  await browser?.deleteSession();
});

describe("the installed package", () => {
  it("opens on the first-run screen, with the package's version in the status bar", async () => {
    const firstRun = await browser.$('[data-testid="first-run"]');
    await firstRun.waitForDisplayed({ timeout: 30_000 });
    expect(await browser.$("h1").getText()).toBe("Welcome to Understudy");
    // The version comes from the backend (the workspace version), as in the package.
    expect(await browser.$('[data-testid="status-bar"]').getText()).toContain(`v${version}`);
    await screenshot("install-first-run.png");
  });

  it("its window has the WM_CLASS the desktop entry names, so docks match it to the entry", async () => {
    const wmClass = entryKey(readFileSync(desktopFile, "utf8"), "StartupWMClass");
    expect(wmClass).toBeTruthy();
    const win = await until("the window", () => visibleWindows()[0]);
    // WM_CLASS(STRING) = "instance", "Class"
    const classes = [...sh("xprop", ["-id", win, "WM_CLASS"]).matchAll(/"([^"]*)"/g)].map((m) => m[1]);
    expect(classes).toContain(wmClass);
  });

  it("Start at login writes a login item that starts the installed binary", async () => {
    const dir = join(process.env.HOME ?? "/nonexistent", ".config", "autostart");
    expect(process.env.HOME).toContain("understudy-e2e");
    await browser.$('[data-testid="open-settings"]').click();
    const box = await browser.$('[data-testid="start-at-login"]');
    await box.waitForDisplayed({ timeout: 10_000 });
    await box.click();
    const entry = await until("the login item", () => (existsSync(dir) ? readdirSync(dir).find((f) => f.endsWith(".desktop")) : undefined), 10_000);
    const exec = entryKey(readFileSync(join(dir, entry), "utf8"), "Exec");
    expect(exec?.split(" ")[0]).toBe(app);
    expect(exec).toContain("--autostart");
    await box.click();
    await until("the login item removed", () => (readdirSync(dir).some((f) => f.endsWith(".desktop")) ? undefined : true), 10_000);
  });
});
