import { describe, it, expect } from "vitest";
import { describe as describeStatus, baseName, composerHint } from "./status";
import type { AppInfo } from "../api/app";
import { appInfo } from "../test-fixtures";

const base = appInfo();

function check(over: Partial<AppInfo>, expect_: { health: string; cloud: string; local: string; mode: string }) {
  expect(describeStatus({ ...base, ...over })).toEqual(expect_);
}

describe("status line", () => {
  it("describes each set-up in words", () => {
    check({}, { health: "nothing", cloud: "OpenAI: not configured", local: "No offline model", mode: "Auto" });
    check({ openai_key: "keyring", first_run: false }, { health: "healthy", cloud: "OpenAI: key from keyring · gpt-4o-mini", local: "No offline model", mode: "Auto" });
    check({ openai_key: "file", first_run: false }, { health: "healthy", cloud: "OpenAI: key from private file · gpt-4o-mini", local: "No offline model", mode: "Auto" });
    check(
      { local_model: "/models/qwen2.5-0.5b-instruct-q4_k_m.gguf", first_run: false, mode: "cloud-only" },
      { health: "healthy", cloud: "OpenAI: not configured", local: "Offline model: qwen2.5-0.5b-instruct-q4_k_m.gguf", mode: "Cloud only" },
    );
    check({ mode: "local-only", openai_key: "env", first_run: false }, { health: "nothing", cloud: "OpenAI: key from environment · gpt-4o-mini", local: "No offline model", mode: "Local only" });
    check({ mode: "local-only", local_model: "gemma-3-1b", first_run: false }, { health: "local-only", cloud: "OpenAI: not configured", local: "Offline model: gemma-3-1b", mode: "Local only" });
  });

  it("baseName handles both separators and catalog ids", () => {
    expect(baseName("C:\\models\\a.gguf")).toBe("a.gguf");
    expect(baseName("/m/b.gguf")).toBe("b.gguf");
    expect(baseName("qwen2.5-0.5b")).toBe("qwen2.5-0.5b");
  });

  it("the composer hint says why nothing can be sent", () => {
    expect(composerHint(base)).toMatch(/^Add an OpenAI API key or an offline model/);
    expect(composerHint({ ...base, mode: "local-only", openai_key: "env", first_run: false })).toMatch(/^Local-only mode needs an offline model/);
    expect(composerHint({ ...base, openai_key: "keyring", first_run: false })).toBe("");
  });
});
