// Run by session.sh with UNDERSTUDY_CONFIG pointing at a broken file; the app must still open
// and say what is wrong, where.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchApp, screenshot } from "./driver";

const expected = (process.env.UNDERSTUDY_E2E_BAD_CONFIG_EXPECT ?? "")
  .split(",")
  .map((s) => s.trim())
  .filter((s) => s.length > 0);
let browser: WebdriverIO.Browser;

describe.skipIf(!process.env.UNDERSTUDY_E2E_BAD_CONFIG)("a broken config file", () => {
  beforeAll(async () => {
    browser = await launchApp();
  });
  afterAll(async () => {
    await browser?.deleteSession();
  });

  it("opens anyway and shows file, line, key and problem", async () => {
    const banner = await browser.$('[data-testid="config-problem"]');
    await banner.waitForDisplayed({ timeout: 30_000 });
    const text = await banner.getText();
    expect(expected.length).toBeGreaterThan(0);
    for (const part of expected) expect(text).toContain(part);
    expect(await browser.$('[data-testid="first-run"]').isDisplayed()).toBe(true);
    await screenshot("config-problem.png");
  });
});
