// The model library in the real app: a user with no offline model searches "Hugging Face" (a
// loopback stand-in, hf-mirror, through HF_ENDPOINT), downloads a GGUF with a visible progress
// bar, and makes it the offline model.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchApp, screenshot } from "./driver";

const hub = process.env.HF_ENDPOINT ?? "";
let browser: WebdriverIO.Browser;

beforeAll(async () => {
  browser = await launchApp();
});
afterAll(async () => {
  await browser?.deleteSession();
});

describe.skipIf(!hub)("models", () => {
  it("searches, downloads with progress, and chooses the offline model", async () => {
    const open = await browser.$('[data-testid="open-models"]');
    await open.waitForDisplayed({ timeout: 30_000 });
    await open.click();
    await browser.$('[data-testid="installed-empty"]').waitForDisplayed({ timeout: 10_000 });
    expect(await browser.$$('[data-testid="catalog-model"]').length).toBeGreaterThanOrEqual(8);

    await browser.$('[data-testid="hub-query"]').setValue("tiny");
    await browser.$('[data-testid="hub-search"]').click();
    const repo = await browser.$('[data-testid="hub-repo"]');
    await repo.waitForDisplayed({ timeout: 10_000 });
    expect(await repo.getText()).toBe("test-org/Tiny-GGUF");
    await repo.click();
    const file = await browser.$('[data-testid="hub-file"]');
    await file.waitForDisplayed({ timeout: 10_000 });
    expect(await file.getText()).toContain("Q4_K_M tiny-Q4_K_M.gguf");
    await file.$('[data-testid="hub-download"]').click();

    // The mirror sends slowly enough to watch: a progress bar with bytes, speed and time left.
    const bar = await browser.$('[data-testid="download-progress"] progress');
    await bar.waitForDisplayed({ timeout: 10_000 });
    await browser.waitUntil(async () => Number(await bar.getAttribute("value")) > 0, { timeout: 10_000, timeoutMsg: "no progress" });
    expect(await browser.$('[data-testid="download-figures"]').getText()).toMatch(/^[\d.]+ MB of 0\.9 MB · [\d.]+ MB\/s/);
    await screenshot("models-downloading.png");

    const notice = await browser.$('[data-testid="models-notice"]');
    await notice.waitForDisplayed({ timeout: 60_000 });
    expect(await notice.getText()).toMatch(/^Downloaded .*tiny-Q4_K_M\.gguf \(sha256 verified\)\.$/);
    const item = await browser.$('[data-testid="installed-model"]');
    await item.waitForDisplayed({ timeout: 10_000 });
    expect(await item.getText()).toContain("llama");
    await item.$('[data-testid="use-model"]').click();
    await item.$('[data-testid="chosen"]').waitForDisplayed({ timeout: 10_000 });
    await browser.waitUntil(async () => (await browser.$('[data-testid="status-bar"]').getText()).includes("tiny-Q4_K_M"), {
      timeout: 10_000,
      timeoutMsg: "the status bar does not name the new offline model",
    });
    await screenshot("models-chosen.png");
  });
});
