// Shared WebDriver session against the real app: tauri-driver on :4444 launches the binary
// named by UNDERSTUDY_APP_BIN (xtask/e2e/session.sh sets it up).
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { remote } from "webdriverio";

export const outDir = resolve(process.env.UNDERSTUDY_E2E_OUT ?? "../target/e2e");

export async function launchApp(): Promise<WebdriverIO.Browser> {
  const application = process.env.UNDERSTUDY_APP_BIN;
  if (!application) throw new Error("UNDERSTUDY_APP_BIN is not set (run through cargo xtask test)");
  return remote({
    hostname: "127.0.0.1",
    port: 4444,
    logLevel: "warn",
    capabilities: { "tauri:options": { application } } as WebdriverIO.Capabilities,
  });
}

export async function screenshot(browser: WebdriverIO.Browser, name: string): Promise<string> {
  mkdirSync(outDir, { recursive: true });
  const path = join(outDir, name);
  await browser.saveScreenshot(path);
  return path;
}
