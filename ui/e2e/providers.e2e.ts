// An ordered chain of two cloud providers in the real app: two llmock upstreams as OpenAI
// (primary) and Groq (backup), the tiny GGUF as the offline model. Faults are made at the
// upstreams; the tray is read from the StatusNotifierItem host, notifications from dunst.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { iconFill, item, menu, notificationsFromNow, sleep, until, type Notification } from "./desktop";
import { launchApp, screenshot, send } from "./driver";

const primary = process.env.UNDERSTUDY_E2E_LLMOCK ?? "";
const backup = process.env.UNDERSTUDY_E2E_LLMOCK_BACKUP ?? "";
const configFile = process.env.UNDERSTUDY_E2E_CONFIG_FILE ?? "";
let browser: WebdriverIO.Browser;
let notifications: () => Notification[];
let sni: [string, string];

const AMBER = /^s?rgba?\(245,158,11/;
const GREEN = /^s?rgba?\(22,163,74/;

/** Every request to that upstream fails (answers and probes alike): a real outage. */
async function down(llmock: string) {
  const r = await fetch(`${llmock}/_llmock/scenario`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ behaviors: [{ type: "fail", status: 503, times: 1000 }] }) });
  expect(r.ok).toBe(true);
}

async function lastAnswer() {
  const all = await browser.$$('[data-testid="message"][data-role="assistant"]').getElements();
  return all[all.length - 1];
}
const completeAnswers = async () => (await browser.$$('[data-testid="message"][data-role="assistant"][data-status="complete"]')).length;
async function ask(text: string, n: number) {
  await send(browser, text);
  await browser.waitUntil(async () => (await completeAnswers()) === n, { timeout: 30_000, timeoutMsg: `answer ${n}` });
  return lastAnswer();
}
async function rows(): Promise<string[]> {
  const els = await browser.$$('[data-testid="provider-row"]').getElements();
  const ids: string[] = [];
  for (const el of els) ids.push((await el.getAttribute("data-id")) ?? "");
  return ids;
}
async function row(id: string) {
  return browser.$(`[data-testid="provider-row"][data-id="${id}"]`);
}

beforeAll(async () => {
  await sleep(500);
  notifications = notificationsFromNow();
  browser = await launchApp();
});
afterAll(async () => {
  await browser?.deleteSession().catch(() => {});
});

describe.skipIf(!primary || !backup)("a chain of providers", () => {
  it("Settings lists the chain; the backup's key is stored there and its Test reports a latency", async () => {
    await browser.$('[data-testid="message-area"]').waitForDisplayed({ timeout: 30_000 });
    await browser.$('[data-testid="open-settings"]').click();
    await browser.waitUntil(async () => (await rows()).join() === "openai,groq", { timeout: 10_000, timeoutMsg: "the chain from the config" });
    const groq = await row("groq");
    expect(await groq.$('[data-testid="provider-key-state"]').getText()).toBe("No key yet.");
    await groq.$('[data-testid="provider-key-input"]').setValue("gsk-e2e-backup-0123456789");
    await groq.$('[data-testid="provider-key-save"]').click();
    await browser.waitUntil(async () => (await (await row("groq")).$('[data-testid="provider-key-state"]').getText()) === "Key saved.", { timeout: 10_000 });
    await (await row("groq")).$('[data-testid="provider-test"]').click();
    const result = await (await row("groq")).$('[data-testid="provider-test-result"]');
    await browser.waitUntil(async () => /^Connected to Groq in \d+ ms/.test(await result.getText()), { timeout: 10_000, timeoutMsg: "no test result" });
    expect(await browser.$('[data-testid="provider-offline"]').getText()).toMatch(/^Offline model/);
    await browser.$('[data-testid="open-settings"]').click(); // the gear toggles back to the chat
  });

  it("answers from the primary while it is healthy; the tray is green", async () => {
    sni = await until("the tray item on D-Bus", item);
    const answer = await ask("Hello?", 1);
    expect(await answer.$('[data-testid="message-badge"]').getText()).toMatch(/^OpenAI · /);
    await until("a healthy tray", () => (menu(sni)[0].startsWith("OpenAI is healthy") ? true : undefined));
    expect(iconFill(sni)).toMatch(GREEN);
  });

  it("the primary fails: the backup answers and is named; the tray turns amber; one notification names it", async () => {
    await down(primary);
    for (let i = 2; i <= 4; i++) {
      const answer = await ask(`Primary down ${i}`, i);
      expect(await answer.$('[data-testid="message-badge"]').getText()).toMatch(/^Groq · llama-3.3-70b/);
      expect(await answer.$('[data-testid="failover-reason"]').getText()).toMatch(/^Answered here because OpenAI (had a server error \(503\)|is failing)/);
    }
    const label = await until("the backup in the tray", () => {
      const m = menu(sni)[0];
      return m.startsWith("OpenAI unreachable since") ? m : undefined;
    });
    expect(label).toMatch(/— answering with Groq$/);
    expect(iconFill(sni)).toMatch(AMBER);
    const status = await browser.$('[data-testid="status-health"]');
    await browser.waitUntil(async () => /^OpenAI outage since .* — answering with Groq$/.test(await status.getText()), { timeout: 10_000, timeoutMsg: "the status bar does not name the backup" });
    expect(await browser.$('[data-testid="status-dot"]').getAttribute("data-health")).toBe("degraded");
    const shown = notifications().filter((n) => n.summary.startsWith("OpenAI is unreachable"));
    expect(shown.map((n) => n.body)).toEqual(["Answering with Groq until it is back."]);
    await screenshot("providers-backup.png");
  });

  it("both fail: the offline model answers", async () => {
    await down(backup);
    const answer = await ask("Both down", 5);
    expect(await answer.$('[data-testid="message-badge"]').getText()).toMatch(/^Local model · tiny-llama/);
  });

  it("the primary is back: answers return to it; exactly one outage notification, naming Groq", async () => {
    await fetch(`${primary}/_llmock/reset`, { method: "POST" });
    await fetch(`${backup}/_llmock/reset`, { method: "POST" });
    await until("a healthy tray again", () => (menu(sni)[0].startsWith("OpenAI is healthy") ? true : undefined), 30_000);
    const answer = await ask("Back?", 6);
    expect(await answer.$('[data-testid="message-badge"]').getText()).toMatch(/^OpenAI · /);
    const outages = notifications().filter((n) => n.summary.startsWith("OpenAI is unreachable"));
    expect(outages.length).toBe(1);
    expect(outages[0].body).toBe("Answering with Groq until it is back.");
  });

  it("Settings adds, tests, reorders and removes a provider, in the config file", async () => {
    await browser.$('[data-testid="open-settings"]').click();
    await browser.waitUntil(async () => (await rows()).join() === "openai,groq", { timeout: 10_000 });
    await browser.$('[data-testid="provider-preset"]').selectByAttribute("value", "mistral");
    await browser.$('[data-testid="provider-add"]').click();
    await browser.waitUntil(async () => (await rows()).join() === "openai,groq,mistral", { timeout: 10_000, timeoutMsg: "mistral not added" });
    expect(readFileSync(configFile, "utf8")).toContain('id = "mistral"');
    // Tested without a key: it says so, in words.
    await (await row("mistral")).$('[data-testid="provider-test"]').click();
    await browser.waitUntil(async () => /No API key is set for Mistral/.test(await (await row("mistral")).$('[data-testid="provider-test-result"]').getText()), { timeout: 10_000 });
    await (await row("mistral")).$('[data-testid="provider-up"]').click();
    await browser.waitUntil(async () => (await rows()).join() === "openai,mistral,groq", { timeout: 10_000, timeoutMsg: "not reordered" });
    const text = readFileSync(configFile, "utf8");
    expect(text.indexOf('"mistral"')).toBeLessThan(text.indexOf('"groq"'));
    await (await row("mistral")).$('[data-testid="provider-remove"]').click();
    await browser.waitUntil(async () => (await rows()).join() === "openai,groq", { timeout: 10_000, timeoutMsg: "not removed" });
    expect(readFileSync(configFile, "utf8")).not.toContain("mistral");
    expect(readFileSync(configFile, "utf8")).toContain("# two llmock upstreams");
  });
});
