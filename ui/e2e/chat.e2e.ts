// The everyday path in the real app: chat with an OpenAI-compatible upstream (llmock, set up
// by session.sh through OPENAI_BASE_URL and OPENAI_API_KEY), stop, regenerate, then restart
// the app and find the history intact.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execSync } from "node:child_process";
import { launchApp, scenario, screenshot, send } from "./driver";

const llmock = process.env.UNDERSTUDY_E2E_LLMOCK ?? "";
let browser: WebdriverIO.Browser;

/** Waits until no app process is left: a new one started while the old one is still exiting
 * would hand over to it (single instance) and quit. */
async function appGone() {
  for (let i = 0; i < 100; i++) {
    try {
      execSync("pgrep -x understudy-app", { stdio: "ignore" });
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("the app did not exit");
}

/** The assistant messages as stored: [status, text] each. */
async function answers(): Promise<[string, string][]> {
  const json = await browser.execute(() =>
    JSON.stringify([...document.querySelectorAll('[data-testid="message"][data-role="assistant"]')].map((e) => [e.getAttribute("data-status") ?? "", (e.querySelector('[data-testid="message-text"]') as HTMLElement | null)?.innerText.trim() ?? ""])),
  );
  return JSON.parse(json) as [string, string][];
}

/** The first listed conversation's full title (the sidebar may shorten it with an ellipsis). */
async function title(): Promise<string> {
  return String(await browser.$('[data-testid="conversation-title"]').getProperty("textContent")).trim();
}

beforeAll(async () => {
  browser = await launchApp();
});
afterAll(async () => {
  await browser?.deleteSession();
});

describe.skipIf(!llmock)("chatting with the real app", () => {
  it("sends with Enter and streams the answer in, labelled with who wrote it", async () => {
    await browser.$('[data-testid="message-area"]').waitForDisplayed({ timeout: 30_000 });
    expect(await browser.$('[data-testid="first-run"]').isExisting()).toBe(false);
    await scenario(llmock, [{ type: "reply", text: "Paris is the capital of **France**." }]);
    await send(browser, "What is the capital of France?");
    await browser.waitUntil(async () => (await answers()).some(([s]) => s === "complete"), { timeout: 15_000, timeoutMsg: "no complete answer" });
    expect(await answers()).toEqual([["complete", "Paris is the capital of France."]]);
    const badge = await browser.$('[data-testid="message"][data-role="assistant"] [data-testid="message-badge"]').getText();
    expect(badge).toBe("OpenAI · gpt-4o-mini");
    expect(await browser.$('[data-testid="message"][data-role="assistant"] strong').getText()).toBe("France");
    await browser.waitUntil(async () => (await title()) === "What is the capital of France?", { timeout: 5_000, timeoutMsg: "the conversation was not named after its first message" });
    await screenshot("chat-answer.png");
  });

  it("Stop ends a stalled answer at once and keeps what was written", async () => {
    await scenario(llmock, [
      { type: "reply", text: "Once upon a time there was a small model that answered when the big one could not, and everyone was happy." },
      { type: "stream_fault", kind: "stall", after_chunks: 4, stall_seconds: 25 },
    ]);
    await send(browser, "Tell me a story");
    const live = await browser.$('[data-testid="live-text"]');
    await browser.waitUntil(async () => (await live.getText()).startsWith("Once"), { timeout: 15_000, timeoutMsg: "no streamed text" });
    const partial = await live.getText();
    const t0 = Date.now();
    await browser.$('[data-testid="stop-button"]').click();
    await browser.waitUntil(async () => (await answers()).some(([s]) => s === "interrupted"), { timeout: 5_000, timeoutMsg: "Stop did not end the answer" });
    const took = Date.now() - t0;
    const stopped = (await answers()).find(([s]) => s === "interrupted")!;
    expect(stopped[1]).toBe(partial);
    expect(await browser.$('[data-testid="message"][data-status="interrupted"] [data-testid="message-note"]').getText()).toBe("Stopped by you.");
    // WebDriver round trips included; the answer itself ends within ms (router test: < 200 ms).
    expect(took).toBeLessThan(2_000);
    await screenshot("chat-stopped.png");
  });

  it("Regenerate answers the last question again", async () => {
    await scenario(llmock, [{ type: "reply", text: "A shorter story." }]);
    await browser.$('[data-testid="regenerate-button"]').click();
    await browser.waitUntil(async () => (await answers()).at(-1)?.[1] === "A shorter story.", { timeout: 15_000, timeoutMsg: "no regenerated answer" });
    expect((await answers()).map(([s]) => s)).toEqual(["complete", "complete"]);
  });

  it("an upstream error is shown on the answer in words, with the next step", async () => {
    await scenario(llmock, [{ type: "fail", status: 401, code: "invalid_api_key", message: "Incorrect API key provided" }]);
    await send(browser, "Are you there?");
    const error = await browser.$('[data-testid="message-error"]');
    await error.waitForDisplayed({ timeout: 15_000 });
    expect(await error.getText()).toContain("OpenAI rejected the API key (401)");
    expect(await error.getText()).toContain("Check the API key in Settings.");
    expect(await browser.$("body").getText()).not.toContain("sk-e2e-chat");
  });

  it("after a restart the conversation and its messages are all there", async () => {
    await browser.deleteSession();
    await appGone();
    browser = await launchApp();
    await browser.$('[data-testid="message-area"]').waitForDisplayed({ timeout: 30_000 });
    await browser.waitUntil(async () => (await browser.$$('[data-testid="message"]').length) === 6, { timeout: 10_000, timeoutMsg: "history not restored" });
    expect(await title()).toBe("What is the capital of France?");
    const roles = await browser.execute(() => [...document.querySelectorAll('[data-testid="message"]')].map((e) => `${e.getAttribute("data-role")}:${e.getAttribute("data-status")}`));
    expect(roles).toEqual(["user:complete", "assistant:complete", "user:complete", "assistant:complete", "user:complete", "assistant:error"]);
    await screenshot("chat-after-restart.png");
  });

  it("follows a streaming answer to the bottom, and stops following once you scroll up", async () => {
    const long = Array.from({ length: 60 }, (_, i) => `Paragraph ${i + 1} of a long answer.`).join("\n\n");
    await scenario(llmock, [{ type: "reply", text: long }, { type: "stream_fault", kind: "stall", after_chunks: 60, stall_seconds: 3 }]);
    const before = (await answers()).length;
    await send(browser, "Write something long");
    const live = await browser.$('[data-testid="live-text"]');
    await browser.waitUntil(async () => (await live.getText()).includes("Paragraph 8 "), { timeout: 15_000, timeoutMsg: "no streamed text" });
    const gap = () => browser.execute(() => {
      const el = document.querySelector('[data-testid="message-area"]') as HTMLElement;
      return { fromBottom: el.scrollHeight - el.scrollTop - el.clientHeight, top: el.scrollTop, overflow: el.scrollHeight > el.clientHeight };
    });
    const following = await gap();
    expect(following.overflow).toBe(true);
    expect(following.fromBottom).toBeLessThan(60);
    // The user scrolls up to read while the answer is paused mid-stream; the rest then arrives.
    await browser.execute(() => {
      const el = document.querySelector('[data-testid="message-area"]') as HTMLElement;
      el.scrollTop = 0;
      el.dispatchEvent(new Event("scroll"));
    });
    await browser.waitUntil(async () => (await answers()).length === before + 1 && (await answers()).at(-1)?.[0] === "complete", { timeout: 20_000, timeoutMsg: "the long answer did not finish" });
    expect((await answers()).at(-1)?.[1]).toContain("Paragraph 60 of a long answer.");
    expect((await gap()).top).toBeLessThan(60);
  });

  it("a kill -9 of the app mid-answer loses nothing: after a restart the answer so far is there, marked interrupted", async () => {
    await scenario(llmock, [
      { type: "reply", text: "Once upon a time there was a small model that answered when the big one could not, and everyone was happy." },
      { type: "stream_fault", kind: "stall", after_chunks: 5, stall_seconds: 25 },
    ]);
    await send(browser, "Crash while you answer");
    const live = await browser.$('[data-testid="live-text"]');
    await browser.waitUntil(async () => (await live.getText()).startsWith("Once"), { timeout: 15_000, timeoutMsg: "no streamed text" });
    const shown = await live.getText();
    await new Promise((r) => setTimeout(r, 1200)); // the text is saved at least every 500 ms
    const pid = execSync("pgrep -x understudy-app").toString().trim().split("\n")[0];
    process.kill(Number(pid), "SIGKILL");
    await browser.deleteSession().catch(() => {});
    await appGone();
    browser = await launchApp();
    await browser.$('[data-testid="message-area"]').waitForDisplayed({ timeout: 30_000 });
    await browser.waitUntil(async () => (await answers()).at(-1)?.[0] === "interrupted", { timeout: 15_000, timeoutMsg: "the cut answer is not there as interrupted" });
    const [, text] = (await answers()).at(-1)!;
    expect(text.length).toBeGreaterThan(0);
    expect(shown.startsWith(text)).toBe(true);
    const users = await browser.execute(() => [...document.querySelectorAll('[data-testid="message"][data-role="user"]')].map((e) => (e as HTMLElement).innerText));
    expect(users.at(-1)).toContain("Crash while you answer");
    await screenshot("chat-after-kill.png");
  });
});
