// Run by session.sh with garbage bytes (and a -wal beside them) where the history belongs: the
// window still opens, says the history was damaged and where the old file is kept, and that file
// holds exactly the bytes that were there.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchApp, screenshot } from "./driver";

const dataDir = process.env.UNDERSTUDY_E2E_BAD_DISK_DIR ?? "";
let browser: WebdriverIO.Browser;

describe.skipIf(!process.env.UNDERSTUDY_E2E_BAD_DISK)("a damaged history file", () => {
  beforeAll(async () => {
    browser = await launchApp();
  });
  afterAll(async () => {
    await browser?.deleteSession();
  });

  it("opens anyway, says the old file is kept and where, and kept its bytes", async () => {
    const banner = await browser.$('[data-testid="store-notice"]');
    await banner.waitForDisplayed({ timeout: 30_000 });
    expect(await banner.getText()).toContain("damaged");
    const kept = await browser.$('[data-testid="store-notice-kept"]').getText();
    expect(kept.startsWith(join(dataDir, "understudy-damaged-"))).toBe(true);
    expect(readFileSync(kept).equals(readFileSync(join(dataDir, "..", "..", "garbage.orig")))).toBe(true);
    expect(readFileSync(`${kept}-wal`).toString()).toBe("wal of the damaged file\n");
    // The app is usable: the first-run screen (nothing set up here) and a fresh history.
    expect(await browser.$('[data-testid="first-run"]').isDisplayed()).toBe(true);
    expect(readdirSync(dataDir)).toContain("understudy.db");
    await screenshot("bad-disk.png");
    await browser.$('[data-testid="store-notice-dismiss"]').click();
    await browser.$('[data-testid="store-notice"]').waitForDisplayed({ reverse: true, timeout: 5_000 });
  });
});
