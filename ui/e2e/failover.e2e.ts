// Failover in the real app: OpenAI (llmock) fails, the offline model (the tiny test GGUF)
// answers at once with the reason shown; the status bar follows the breaker; once probes find
// OpenAI healthy again, "Ask OpenAI again" re-asks it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchApp, screenshot } from "./driver";

const llmock = process.env.UNDERSTUDY_E2E_LLMOCK ?? "";
/** `[gateway] listen` of this suite's config (session.sh). */
const gateway = process.env.UNDERSTUDY_E2E_GATEWAY ?? "";
let browser: WebdriverIO.Browser;

async function scenario(behaviors: Record<string, unknown>[]) {
  const r = await fetch(`${llmock}/_llmock/scenario`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ behaviors }) });
  expect(r.ok).toBe(true);
}

async function send(text: string) {
  const input = await browser.$('[data-testid="composer-input"]');
  await input.waitForEnabled({ timeout: 10_000 });
  await input.setValue(text);
  await browser.keys("Enter");
}

async function lastAnswer() {
  const all = await browser.$$('[data-testid="message"][data-role="assistant"]').getElements();
  return all[all.length - 1];
}
const completeAnswers = async () => (await browser.$$('[data-testid="message"][data-role="assistant"][data-status="complete"]')).length;

beforeAll(async () => {
  browser = await launchApp();
});
afterAll(async () => {
  await browser?.deleteSession();
});

describe.skipIf(!llmock)("failover in the real app", () => {
  it("answers from the offline model at once when OpenAI fails, and says why", async () => {
    await browser.$('[data-testid="message-area"]').waitForDisplayed({ timeout: 30_000 });
    await scenario([{ type: "fail", status: 503, message: "overloaded", times: 50, match: { path: "*chat*" } }]);
    await send("Hello?");
    await browser.waitUntil(async () => (await completeAnswers()) === 1, { timeout: 20_000, timeoutMsg: "no answer" });
    const answer = await lastAnswer();
    expect(await answer.$('[data-testid="message-badge"]').getText()).toMatch(/^Local model · tiny-llama/);
    expect(await answer.$('[data-testid="failover-reason"]').getText()).toBe("Answered here because OpenAI had a server error (503).");
  });

  it("the status bar turns to outage after repeated failures", async () => {
    for (let i = 2; i <= 3; i++) {
      await send(`Hello again ${i}`);
      await browser.waitUntil(async () => (await completeAnswers()) === i, { timeout: 20_000, timeoutMsg: `answer ${i}` });
    }
    const status = await browser.$('[data-testid="status-health"]');
    await browser.waitUntil(async () => (await status.getText()).startsWith("OpenAI outage since"), { timeout: 10_000, timeoutMsg: "no outage in the status bar" });
    expect(await status.getText()).toMatch(/answering with tiny-llama/);
    expect(await browser.$('[data-testid="status-dot"]').getAttribute("data-health")).toBe("outage");
    expect(await browser.$('[data-testid="ask-cloud-again"]').isExisting()).toBe(false);
    await screenshot("failover-outage.png");
  });

  it("probes find OpenAI back; Ask OpenAI again re-asks it", async () => {
    await fetch(`${llmock}/_llmock/reset`, { method: "POST" });
    const status = await browser.$('[data-testid="status-health"]');
    await browser.waitUntil(async () => (await status.getText()) === "Ready", { timeout: 20_000, timeoutMsg: "OpenAI did not come back in the status bar" });
    const again = await browser.$('[data-testid="ask-cloud-again"]');
    await again.waitForDisplayed({ timeout: 5_000 });
    expect(await again.getText()).toBe("Ask OpenAI again");
    await again.click();
    await browser.waitUntil(async () => (await (await lastAnswer()).$('[data-testid="message-badge"]').getText()).startsWith("OpenAI"), { timeout: 15_000, timeoutMsg: "OpenAI did not answer again" });
    expect(await (await lastAnswer()).getAttribute("data-status")).toBe("complete");
    await screenshot("failover-recovered.png");
  });

  it.skipIf(!gateway)("the Settings switch serves other tools through the window's failover", async () => {
    await browser.$('[data-testid="open-settings"]').click();
    const box = await browser.$('[data-testid="settings-gateway"]');
    await box.waitForDisplayed({ timeout: 10_000 });
    expect(await box.isSelected()).toBe(false);
    await expect(fetch(`http://${gateway}/understudy/status`)).rejects.toThrow();
    await box.click();
    await browser.$('[data-testid="settings-save"]').click();
    const state = await browser.$('[data-testid="gateway-state"]');
    await state.waitForDisplayed({ timeout: 10_000 });
    expect(await state.getText()).toContain(`Serving at http://${gateway}/v1`);
    await screenshot("settings-gateway.png");
    // The per-install token, as Settings shows it for other tools' environment.
    const lines = await browser.$('[data-testid="gateway-env"]');
    await lines.waitForExist({ timeout: 10_000 });
    await lines.scrollIntoView();
    const token = /OPENAI_API_KEY=(\S+)/.exec(await lines.getText())?.[1] ?? "";
    expect(token.length).toBeGreaterThan(32);

    const ask = (key = token, contentType = "application/json") =>
      fetch(`http://${gateway}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": contentType, authorization: `Bearer ${key}` },
        body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "from another tool" }] }),
      });
    expect((await ask("wrong")).status).toBe(401);
    expect((await ask(token, "text/plain")).status).toBe(415);
    let r = await ask();
    expect(r.status).toBe(200);
    expect(r.headers.get("x-understudy-provider")).toBe("openai");
    // OpenAI fails: the tool gets the offline model's answer, and the window's health shows it.
    await scenario([{ type: "fail", status: 503, message: "overloaded", times: 50, match: { path: "*chat*" } }]);
    r = await ask();
    expect(r.status).toBe(200);
    expect(r.headers.get("x-understudy-provider")).toBe("local");
    expect(r.headers.get("x-understudy-failover")).toContain("503");
    const body = (await r.json()) as { choices: { message: { content: string } }[] };
    expect(body.choices[0].message.content.length).toBeGreaterThan(0);
    const health = (await (await fetch(`http://${gateway}/understudy/status`)).json()) as { providers: { id: string; last_error: string | null }[] };
    expect(health.providers[0].last_error).toContain("503");
    await fetch(`${llmock}/_llmock/reset`, { method: "POST" });

    // Off again: the port is released.
    await box.click();
    await browser.$('[data-testid="settings-save"]').click();
    await browser.waitUntil(async () => !(await state.isExisting()), { timeout: 10_000, timeoutMsg: "still serving" });
    await expect(fetch(`http://${gateway}/understudy/status`)).rejects.toThrow();
  });
});
