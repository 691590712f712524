// Model output is untrusted: markdown is rendered with marked, highlighted with highlight.js
// and then sanitised by DOMPurify, which removes scripts, event handlers, javascript: links
// and the like. Remote images and media are dropped too (a markdown image is a tracking
// beacon); only an <a> can be a link, and it keeps only a web or mail address
// (ui/src/lib/hostile.test.ts has the payloads). The app's navigation guard
// (src-tauri/src/navigation.rs) is the second line: the window never leaves the app's origin.
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

// Elements that can run, load, frame, submit or navigate (a form, an image map's <area>, <base>,
// <meta> refresh, ...), and form controls (a fake "paste your key" field). Most are not in
// DOMPurify's HTML allow-list anyway; naming them keeps that true whatever its defaults become.
const FORBID_TAGS = [
  "script", "style", "template", "noscript", "base", "meta", "link", "iframe", "frame", "frameset", "object", "embed", "applet", "portal", "fencedframe",
  "map", "area", "form", "input", "button", "select", "option", "optgroup", "datalist", "textarea", "output", "fieldset",
  "video", "audio", "source", "track", "picture", "svg", "math", "use", "image",
];

// Attributes that load, submit or navigate anywhere but through an <a href> we checked: a
// `usemap` turns an image into links, `srcset`/`background`/`poster` load remote images, `ping`
// beacons on a click, `form*`/`action` submit, `popovertarget`/`command*` act on a click.
const FORBID_ATTR = [
  "style", "srcset", "sizes", "background", "poster", "lowsrc", "dynsrc", "longdesc", "cite", "ping", "usemap", "ismap", "download", "target",
  "action", "method", "enctype", "formaction", "formmethod", "formtarget", "formenctype", "formnovalidate",
  "xlink:href", "xmlns", "data", "codebase", "archive", "classid", "popovertarget", "popovertargetaction", "command", "commandfor",
];

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    const href = node.getAttribute("href") ?? "";
    // Only web and mail links stay links; the real address is shown on hover (phishing text).
    if (!/^(https?:|mailto:)/i.test(href)) node.removeAttribute("href");
    else node.setAttribute("title", href);
    node.setAttribute("rel", "noopener noreferrer nofollow");
    node.setAttribute("target", "_blank");
  } else {
    // Only an <a> may carry a link.
    for (const name of node.getAttributeNames()) if (/(^|:)href$/i.test(name)) node.removeAttribute(name);
  }
  if (node.tagName === "IMG") {
    const src = node.getAttribute("src") ?? "";
    if (!src.startsWith("data:image/")) node.remove();
  }
});

/** Safe HTML for a message's markdown. */
export function renderMarkdown(text: string): string {
  const html = marked.parse(text) as string;
  return DOMPurify.sanitize(html, { USE_PROFILES: { html: true }, FORBID_TAGS, FORBID_ATTR });
}
