// An outage with no offline model to fall back on: one notification says nothing can answer and
// offers "Download a model"; taking that action (through dunst, as a click on it does) brings the
// window back from the tray, on the model library. OpenAI is unreachable for real here: session.sh
// points the app at a loopback port nobody listens on.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeWindow, notificationsFromNow, sh, sleep, until, visibleWindows, type Notification } from "./desktop";
import { launchApp, screenshot } from "./driver";

let browser: WebdriverIO.Browser;
/** This suite's notifications (set before the app starts). */
let notifications: () => Notification[];

beforeAll(async () => {
  notifications = notificationsFromNow();
  browser = await launchApp();
});
afterAll(async () => {
  await browser?.deleteSession();
});

describe.skipIf(!process.env.UNDERSTUDY_E2E_NO_MODEL)("an outage with no offline model", () => {
  it("notifies once that nothing can answer, and Download a model opens the model library", async () => {
    await browser.$('[data-testid="message-area"]').waitForDisplayed({ timeout: 30_000 });
    // The user has put the window away; the tray is all they see.
    const [win] = visibleWindows();
    closeWindow(win);
    await until("the window hidden", () => (visibleWindows().length === 0 ? true : undefined));
    // The outage notification is on screen (probes every second; the breaker opens after a few).
    await until("a notification on screen", () => (Number(sh("dunstctl", ["count", "displayed"]).trim()) > 0 ? true : undefined));
    sh("dunstctl", ["action", "0"]);
    await until("the window shown", () => (visibleWindows().length === 1 ? true : undefined), 10_000);
    await browser.$('[data-testid="models"]').waitForDisplayed({ timeout: 10_000 });
    await screenshot("no-model-download-action.png");
    await sleep(1500); // room for a second notification, were one sent
    const notes = notifications();
    expect(notes).toHaveLength(1);
    expect(notes[0].summary).toMatch(/^OpenAI is unreachable/);
    expect(notes[0].body).toContain("No offline model is installed, so nothing can answer");
  });
});
