// Model output is untrusted: markdown is rendered with marked, highlighted with highlight.js
// and then sanitised by DOMPurify, which removes scripts, event handlers, javascript: links
// and the like. Remote images and media are dropped too (a markdown image is a tracking
// beacon); links keep only web and mail addresses (ui/src/lib/hostile.test.ts has the payloads).
import { Marked } from "marked";
import { markedHighlight } from "marked-highlight";
import hljs from "highlight.js/lib/common";
import DOMPurify from "dompurify";

const marked = new Marked(
  markedHighlight({
    emptyLangClass: "hljs",
    langPrefix: "hljs language-",
    highlight(code, lang) {
      const language = hljs.getLanguage(lang) ? lang : "plaintext";
      return hljs.highlight(code, { language }).value;
    },
  }),
  { gfm: true, breaks: false, async: false },
);

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    const href = node.getAttribute("href") ?? "";
    // Only web and mail links stay links; the real address is shown on hover (phishing text).
    if (!/^(https?:|mailto:)/i.test(href)) node.removeAttribute("href");
    else node.setAttribute("title", href);
    node.setAttribute("rel", "noopener noreferrer nofollow");
    node.setAttribute("target", "_blank");
  }
  if (node.tagName === "IMG") {
    const src = node.getAttribute("src") ?? "";
    if (!src.startsWith("data:image/")) node.remove();
  }
});

/** Safe HTML for a message's markdown. */
export function renderMarkdown(text: string): string {
  const html = marked.parse(text) as string;
  return DOMPurify.sanitize(html, { USE_PROFILES: { html: true }, FORBID_TAGS: ["style", "form", "input", "button", "iframe", "video", "audio", "source", "track", "picture", "template"], FORBID_ATTR: ["style"] });
}
