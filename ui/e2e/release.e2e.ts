// Closed to the tray, the window lets go of its web view after `[tray] release_after` (2 s here,
// session.sh), and no WebKit process is left; opened from the tray it is rebuilt and shows what
// it showed: the open conversation and a half-typed message. Ending WebKit's network process
// ends WebDriver's session too, so each rebuilt window gets a new one (`attachApp`).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { children, click, closeWindow, cpuTicks, iconFill, item, pidOf, pss, sleep, until, visibleWindows } from "./desktop";
import { attachApp, launchApp, scenario, screenshot, send } from "./driver";

const llmock = process.env.UNDERSTUDY_E2E_LLMOCK ?? "";
/** The in-app gateway (`[gateway] enabled`, no token) of this suite's config (session.sh). */
const gateway = process.env.UNDERSTUDY_E2E_GATEWAY ?? "";
let launched: WebdriverIO.Browser;
/** The session driving the window now: tauri-driver's, then one attached per rebuild. */
let browser: WebdriverIO.Browser;
let detach = async () => {};

beforeAll(async () => {
  launched = browser = await launchApp();
});
afterAll(async () => {
  // The app first (tauri-driver's session ends it): an attached session whose driver goes while
  // the app runs takes the app down with it (a GLib critical in WebKit, on every such session).
  await launched?.deleteSession().catch(() => {});
  await detach();
});

/** Drives the rebuilt window of app `pid` through a new session. */
async function reattach(pid: number) {
  const a = await attachApp(pid);
  detach = a.close;
  browser = a.browser;
}

const webkit = (app: number) => children(app).filter(([, name]) => name.startsWith("WebKit"));
/** The app and its WebKit children, PSS in MB. */
function footprint(app: number): string {
  const parts = [[app, "app"] as [number, string], ...webkit(app)].map(([pid, name]) => [name, pss(pid) / 1024] as const);
  const total = parts.reduce((s, [, mb]) => s + mb, 0);
  return `${total.toFixed(0)} MB (${parts.map(([n, mb]) => `${n} ${mb.toFixed(0)}`).join(", ")})`;
}

/** Idle CPU of the app and its WebKit children over UNDERSTUDY_E2E_IDLE_S seconds (0: not measured). */
async function idleCpu(app: number): Promise<string> {
  const secs = Number(process.env.UNDERSTUDY_E2E_IDLE_S ?? 0);
  if (!secs) return "not measured";
  const pids = () => [app, ...webkit(app).map(([p]) => p)];
  const before = pids().reduce((s, p) => s + cpuTicks(p), 0);
  await sleep(secs * 1000);
  const used = pids().reduce((s, p) => s + cpuTicks(p), 0) - before;
  return `${(used / secs).toFixed(2)} % of a core over ${secs} s`;
}

describe.skipIf(!llmock)("the web view is released in the tray and rebuilt on open", () => {
  it("keeps the open conversation and the draft across a release", async () => {
    await browser.$('[data-testid="message-area"]').waitForDisplayed({ timeout: 30_000 });
    // Two conversations; the older one is open, so the default (the newest) would differ.
    await scenario(llmock, [{ type: "reply", text: "First answer." }, { type: "reply", text: "Second answer." }]);
    await send(browser, "the first conversation");
    await browser.waitUntil(async () => (await browser.$$('[data-testid="conversation"]').length) === 1, { timeout: 15_000 });
    await browser.$('[data-testid="new-chat"]').click();
    await send(browser, "the second conversation");
    await browser.waitUntil(async () => (await browser.$$('[data-testid="conversation"]').length) === 2, { timeout: 15_000 });
    await browser.waitUntil(async () => (await browser.$('[data-testid="send-button"]').isExisting()), { timeout: 15_000 });
    const older = browser.$$('[data-testid="conversation"]')[1];
    const olderId = await older.getAttribute("data-id");
    await older.$('[data-testid="conversation-title"]').click();
    await browser.waitUntil(async () => (await browser.$('[data-testid="conversation"][class*="active"]').getAttribute("data-id")) === olderId, { timeout: 5_000 });
    const sni = await until("the tray item on D-Bus", item);
    const app = pidOf(sni[0])!;
    await sleep(3_000);
    console.log(`footprint open, idle: ${footprint(app)}; idle CPU ${await idleCpu(app)}`);
    expect(webkit(app).some(([, n]) => n.startsWith("WebKitWebProc"))).toBe(true);

    // An answer that is still streaming when the window goes (it pauses for 12 s, then ends).
    await scenario(llmock, [{ type: "reply", text: "Written while the window was gone." }, { type: "stream_fault", kind: "stall", after_chunks: 2, stall_seconds: 12 }]);
    const sent = Date.now();
    await send(browser, "answer me while I am away");
    await browser.waitUntil(async () => (await browser.$('[data-testid="stop-button"]').isExisting()), { timeout: 10_000 });
    await browser.$('[data-testid="composer-input"]').setValue("half a quest");
    await sleep(800); // the snapshot is written debounced


    closeWindow(visibleWindows()[0]);
    await until("the window hidden", () => (visibleWindows().length === 0 ? true : undefined), 10_000);
    // Past the grace period no WebKit process of the app is left: the web process exits with its
    // view, and the app ends the network process.
    await until("every WebKit process of the app gone", () => (webkit(app).length === 0 ? true : undefined), 20_000);
    await sleep(3_000);
    console.log(`footprint released: ${footprint(app)}; idle CPU ${await idleCpu(app)}`);
    expect(webkit(app)).toEqual([]);

    // With the web view gone the app still serves other tools and watches OpenAI: OpenAI fails,
    // the in-app gateway answers from the offline model, and the tray icon turns at once.
    const healthy = iconFill(sni);
    await scenario(llmock, [{ type: "fail", status: 503, message: "overloaded", times: 50, match: { path: "*chat*" } }]);
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`http://${gateway}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "gpt-4o-mini", max_tokens: 8, messages: [{ role: "user", content: "from another tool" }] }),
      });
      expect(r.status).toBe(200);
      expect(r.headers.get("x-understudy-provider")).toBe("local");
    }
    await until("the tray icon to leave healthy", () => (iconFill(sni) !== healthy ? true : undefined), 10_000);
    expect(webkit(app)).toEqual([]);
    await fetch(`${llmock}/_llmock/reset`, { method: "POST" });

    await sleep(Math.max(0, sent + 13_000 - Date.now())); // the answer has ended meanwhile
    const t0 = Date.now();
    click(sni, "Open Understudy");
    await until("the window shown again", () => (visibleWindows().length === 1 ? true : undefined), 10_000);
    const mapped = Date.now() - t0;
    await reattach(app);
    await browser.$('[data-testid="composer-input"]').waitForDisplayed({ timeout: 10_000, interval: 50 });
    const composer = Date.now() - t0;
    // The page's own clock (same epoch): when it began loading and first painted.
    const page = await browser.execute(() => ({ origin: performance.timeOrigin, fcp: performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? null }));
    const paint = page.fcp === null ? "?" : (page.origin + page.fcp - t0).toFixed(0);
    console.log(`reopen after release: window mapped ${mapped} ms, page loading ${(page.origin - t0).toFixed(0)} ms, first paint ${paint} ms, composer seen by a new WebDriver session ${composer} ms`);
    expect(await browser.$('[data-testid="composer-input"]').getValue()).toBe("half a quest");
    expect(await browser.$('[data-testid="conversation"][class*="active"]').getAttribute("data-id")).toBe(olderId);
    // The answer that finished while the window was gone is there, from the store.
    await browser.waitUntil(async () => (await browser.$$('[data-testid="message"]').length) === 4, { timeout: 5_000 });
    const last = browser.$$('[data-testid="message"][data-role="assistant"]')[1];
    expect(await last.getAttribute("data-status")).toBe("complete");
    expect(await last.$('[data-testid="message-text"]').getText()).toBe("Written while the window was gone.");
    await screenshot("release-reopened.png");
  }, 90_000 + 2_000 * Number(process.env.UNDERSTUDY_E2E_IDLE_S ?? 0));

  it("a second launch rebuilds a released window too", async () => {
    const app = pidOf((await until("the tray item on D-Bus", item))[0])!;
    closeWindow(visibleWindows()[0]);
    await until("every WebKit process of the app gone", () => (webkit(app).length === 0 ? true : undefined), 20_000);
    execFileSync(process.env.UNDERSTUDY_APP_BIN!, [], { timeout: 15_000, stdio: "ignore" }); // hands over and exits
    await until("the window shown again", () => (visibleWindows().length === 1 ? true : undefined), 10_000);
    await reattach(app);
    await browser.$('[data-testid="composer-input"]').waitForDisplayed({ timeout: 10_000 });
    expect(await browser.$('[data-testid="composer-input"]').getValue()).toBe("half a quest");
  });
});
