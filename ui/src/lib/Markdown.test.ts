import { describe, it, expect } from "vitest";
import { render } from "@testing-library/svelte";
import Markdown from "./Markdown.svelte";
import { renderMarkdown } from "./markdown";

describe("markdown", () => {
  it("renders markdown with highlighted code blocks and a copy button", () => {
    const { container } = render(Markdown, { text: "Use **this**:\n\n```python\ndef f():\n    return 1\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |" });
    expect(container.querySelector("strong")).toHaveTextContent("this");
    const code = container.querySelector("pre code.language-python");
    expect(code).not.toBeNull();
    expect(code!.querySelector(".hljs-keyword")).toHaveTextContent("def");
    expect(container.querySelector("pre .copy-code")).toHaveTextContent("Copy");
    expect(container.querySelectorAll("td")).toHaveLength(2);
  });

  it("model output cannot run script, load remote images or navigate", () => {
    const html = renderMarkdown(
      [
        "<script>alert(1)</script>",
        '<img src="https://evil.example/beacon.png">',
        "![x](https://evil.example/pixel.gif)",
        '<a href="javascript:alert(1)">click</a>',
        "[ok](https://example.com)",
        '<div onmouseover="alert(1)" style="position:fixed">x</div>',
        '<iframe src="https://evil.example"></iframe>',
        '<svg><script>alert(1)</script></svg>',
      ].join("\n\n"),
    );
    expect(html).not.toMatch(/<script|onmouseover|javascript:|<iframe|evil\.example|style=/i);
    expect(html).toContain('<a href="https://example.com" title="https://example.com" rel="noopener noreferrer nofollow" target="_blank">ok</a>');
  });
});
