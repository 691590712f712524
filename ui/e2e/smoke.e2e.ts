import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, statSync } from "node:fs";
import { launchApp, screenshot } from "./driver";

let browser: WebdriverIO.Browser;

beforeAll(async () => {
  browser = await launchApp();
});
afterAll(async () => {
  await browser?.deleteSession();
});

describe("first start of the real app", () => {
  it("opens the window on the first-run screen with the three set-up actions", async () => {
    const firstRun = await browser.$('[data-testid="first-run"]');
    await firstRun.waitForDisplayed({ timeout: 30_000 });
    expect(await browser.getTitle()).toBe("Understudy");
    expect(await browser.$("h1").getText()).toBe("Welcome to Understudy");
    expect(await browser.$('[data-testid="action-add-key"] .title').getText()).toBe("Add OpenAI API key");
    expect(await browser.$('[data-testid="action-download-model"] .title').getText()).toBe("Download an offline model");
    expect(await browser.$('[data-testid="action-use-gguf"] .title').getText()).toBe("Use a GGUF file");
    // The data came over IPC from crates/core: no key, no model, defaults.
    const status = await browser.$('[data-testid="status-bar"]');
    expect(await status.isDisplayed()).toBe(true);
    expect(await status.getText()).toContain("OpenAI: not configured");
    expect(await status.getText()).toContain("Mode: Auto");
    expect(await browser.$('[data-testid="config-problem"]').isExisting()).toBe(false);
    const shot = await screenshot("first-run.png");
    expect(existsSync(shot) && statSync(shot).size > 10_000).toBe(true);
  });

  it("a set-up action opens its panel", async () => {
    await browser.$('[data-testid="action-add-key"]').click();
    const panel = await browser.$('[data-testid="panel-add-key"]');
    await panel.waitForDisplayed({ timeout: 5_000 });
    expect(await panel.getText()).toContain("Add your OpenAI API key");
  });

  it("saving an API key stores it (keyring or private file) and opens the chat", async () => {
    await browser.$('[data-testid="api-key-input"]').setValue("sk-e2e-0123456789abcdef");
    await browser.$('[data-testid="api-key-save"]').click();
    const messages = await browser.$('[data-testid="message-area"]');
    await messages.waitForDisplayed({ timeout: 10_000 });
    expect(await browser.$('[data-testid="first-run"]').isExisting()).toBe(false);
    expect(await browser.$('[data-testid="status-bar"]').getText()).toMatch(/OpenAI: key from (keyring|private file)/);
    // the key itself is nowhere on screen
    expect(await browser.$("body").getText()).not.toContain("sk-e2e-0123456789abcdef");
  });
});
