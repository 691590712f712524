// Model output can never navigate or replace the app window, tried with real pointer clicks in
// the real app: an answer holding an image map whose <area> covers the picture, then (as if the
// sanitizer and the answer's click handler had a hole) the same map put straight into the page
// and a script setting `location`, which only the app's navigation guard stops. The "attacker
// page" is llmock's own address, reachable, so a navigation that got through would show it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchApp, scenario, screenshot, send } from "./driver";

const llmock = process.env.UNDERSTUDY_E2E_LLMOCK ?? "";
const attacker = `${llmock}/login`;
// A valid 1×1 transparent GIF, drawn at the size the answer asks for.
const GIF = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7";
const imageMap = (name: string) => `<img alt="chart" src="${GIF}" usemap="#${name}" width="400" height="240"><map name="${name}"><area shape="default" href="${attacker}"></map>`;
let browser: WebdriverIO.Browser;
let home = "";

/** Fails if the window's URL moves off `home` within `ms`, or the app's UI is gone. */
async function staysHome(ms = 2_000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    expect(await browser.getUrl()).toBe(home);
    await new Promise((r) => setTimeout(r, 200));
  }
  expect(await browser.$('[data-testid="composer-input"]').isDisplayed()).toBe(true);
  expect(await browser.$$('[data-testid="message"][data-role="assistant"]').length).toBeGreaterThan(0);
}

beforeAll(async () => {
  browser = await launchApp();
});
afterAll(async () => {
  await browser?.deleteSession();
});

describe.skipIf(!llmock)("hostile answers in the real app", () => {
  it("a click on an answer's image map leaves the window where it is", async () => {
    await browser.$('[data-testid="message-area"]').waitForDisplayed({ timeout: 30_000 });
    home = await browser.getUrl();
    expect(home).toMatch(/^(tauri:\/\/localhost|http:\/\/tauri\.localhost)(\/|$)/);
    await scenario(llmock, [{ type: "reply", text: `Here is the chart:\n\n${imageMap("m")}` }]);
    await send(browser, "Draw me a chart");
    const img = await browser.$('[data-testid="message"][data-role="assistant"][data-status="complete"] img[alt="chart"]');
    await img.waitForDisplayed({ timeout: 15_000 });
    await img.click();
    await staysHome();
    await screenshot("hostile-image-map.png");
  });

  it("should an image map ever reach the page, a real click on it is still refused by the navigation guard", async () => {
    await browser.execute((html: string) => {
      const box = document.createElement("div");
      box.id = "injected";
      box.style.cssText = "position:fixed;left:20px;top:20px;z-index:99999";
      box.innerHTML = html;
      // Records that the pointer landed on the <area>, whose default action is to follow it.
      box.querySelector("area")!.addEventListener("click", () => ((window as unknown as { areaClicked: boolean }).areaClicked = true));
      document.body.append(box);
    }, imageMap("injected-map"));
    // Pointer input at the picture's centre (an element click would refuse: the <area> is on top).
    await browser.action("pointer").move({ origin: await browser.$("#injected img") }).down().up().perform();
    expect(await browser.execute(() => (window as unknown as { areaClicked?: boolean }).areaClicked)).toBe(true);
    await staysHome();
  });

  it("a script setting location cannot take the window off the app either", async () => {
    await browser.execute((url: string) => {
      window.location.href = url;
    }, attacker);
    await staysHome();
    await screenshot("hostile-after-navigation-attempts.png");
  });
});
