// Shared WebDriver session against the real app: tauri-driver on :4444 launches the binary
// named by UNDERSTUDY_APP_BIN (xtask/e2e/session.sh sets it up).
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { join, resolve } from "node:path";
import { remote } from "webdriverio";
import { until } from "./desktop";

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

/** A new WebDriver session on the running app `pid`, for after WebKit's automation session has
 * ended: the app ends WebKit's network process with a released web view, which ends that session
 * (and so the one tauri-driver started). A WebKitWebDriver of its own attaches to the inspector
 * server the app was started with; the app hands the new session its current web view.
 * `close()` stops that driver, which ends the session (the app and its window go on). */
export async function attachApp(pid: number): Promise<{ browser: WebdriverIO.Browser; close: () => Promise<void> }> {
  const environ = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
  const target = environ.find((v) => v.startsWith("WEBKIT_INSPECTOR_SERVER="))?.split("=")[1];
  if (!target) throw new Error("the app was not started with WebKit's inspector server (WEBKIT_INSPECTOR_SERVER)");
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const driver = spawn("WebKitWebDriver", [`--port=${port}`, `--target=${target}`], { stdio: "ignore" });
  const listening = () =>
    new Promise<boolean>((resolve) => {
      const c = connect(port, "127.0.0.1", () => (c.end(), resolve(true))).on("error", () => resolve(false));
    });
  try {
    await until("WebKitWebDriver listening", async () => ((await listening()) ? true : undefined), 10_000);
    const browser = await remote({ hostname: "127.0.0.1", port, logLevel: "warn", capabilities: {} as WebdriverIO.Capabilities });
    return {
      browser,
      // Not deleteSession: WebDriver would close the window with it.
      close: async () => {
        driver.kill();
        await new Promise((r) => driver.once("exit", r));
      },
    };
  } catch (e) {
    driver.kill();
    throw e;
  }
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
