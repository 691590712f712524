import { describe, it, expect } from "vitest";
import { describe as describeStatus, baseName, composerHint, healthLine } from "./status";
import type { HealthSnapshot } from "../api/health";
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

describe("health line", () => {
  const at = new Date(2026, 10, 25, 14, 5);
  const provider = (id: string, label: string): HealthSnapshot["providers"][0] => ({
    id, label, model: "gpt-4o-mini", key_problem: null, health: "healthy", breaker: { state: "closed" }, since: at.getTime(), last_error: null, account_problem: null, answered_since_close: true,
  });
  const snap = (over: Partial<HealthSnapshot>, p: Partial<HealthSnapshot["providers"][0]> = {}): HealthSnapshot => ({
    mode: "auto", route: "openai", local_model: "qwen", ...over,
    providers: [{ ...provider("openai", "OpenAI"), ...p }],
  });
  it("names the state, since when, and who answers now", () => {
    expect(healthLine(snap({}), at)).toEqual({ health: "healthy", words: "Ready" });
    expect(healthLine(snap({}, { health: "degraded", last_error: "OpenAI had a server error (503)" }), at)).toEqual({ health: "degraded", words: "OpenAI degraded: OpenAI had a server error (503)" });
    const out = healthLine(snap({ route: "local" }, { health: "outage" }), at);
    expect(out.health).toBe("outage");
    expect(out.words).toMatch(/^OpenAI outage since .*(14.05|2.05 PM).* — answering with qwen$/);
    expect(healthLine(snap({ route: "none", local_model: null }, { health: "outage" }), at).health).toBe("nothing");
    expect(healthLine(snap({ mode: "local-only", route: "local" }), at)).toEqual({ health: "local-only", words: "Answering locally by choice" });
  });

  it("a backup cloud answering for a down primary is amber and named, not 'no offline model'", () => {
    const groq = provider("groq", "Groq");
    const chain = (route: string, local: string | null) => ({ ...snap({ route, local_model: local }, { health: "outage" }), providers: [snap({}, { health: "outage" }).providers[0], groq] });
    const out = healthLine(chain("groq", null), at);
    expect(out.health).toBe("degraded");
    expect(out.words).toMatch(/^OpenAI outage since .* — answering with Groq$/);
    expect(healthLine(chain("local", "qwen"), at).health).toBe("outage");
  });
});
