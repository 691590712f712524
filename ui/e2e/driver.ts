// Shared WebDriver session against the real app: tauri-driver on :4444 launches the binary
// named by UNDERSTUDY_APP_BIN (xtask/e2e/session.sh sets it up).
import { execFileSync } from "node:child_process";
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

/** The X screen as the user sees it (ImageMagick's `import`). Not WebDriver's screenshot: that
 * hangs WebKitWebDriver on a page drawn without GPU compositing, which is how the app draws
 * (src-tauri/src/window.rs `prefer_cpu_rendering`). */
export async function screenshot(name: string): Promise<string> {
  mkdirSync(outDir, { recursive: true });
  const path = join(outDir, name);
  execFileSync("import", ["-window", "root", path], { timeout: 15_000 });
  return path;
}

/** Scripts llmock (at `llmock`) for the window's streamed requests only: the app's background
 * health probes (non-streamed, 1 token) must not use up the scripted answers. */
export async function scenario(llmock: string, behaviors: Record<string, unknown>[]) {
  behaviors = behaviors.map((b) => ({ match: { stream: true }, ...b }));
  const r = await fetch(`${llmock}/_llmock/scenario`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ behaviors }) });
  if (!r.ok) throw new Error(`llmock refused the scenario: ${r.status} ${await r.text()}`);
}

/** Types a message into the composer and sends it with Enter. */
export async function send(browser: WebdriverIO.Browser, text: string) {
  const input = await browser.$('[data-testid="composer-input"]');
  await input.waitForEnabled({ timeout: 10_000 });
  await input.setValue(text);
  await browser.keys("Enter");
}
