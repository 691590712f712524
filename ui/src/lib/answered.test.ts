import { describe, it, expect } from "vitest";
import { answeredBy, reasonWords } from "./answered";

describe("who wrote an answer", () => {
  it("puts the typed reason into the same words as the tray's", () => {
    expect(answeredBy("OpenAI", "gpt-4o-mini", null)).toBe("OpenAI · gpt-4o-mini");
    expect(answeredBy("Groq", "llama-3.3-70b", { provider: "openai", label: "OpenAI", reason: "timed_out" })).toBe("Groq · llama-3.3-70b, because OpenAI timed out");
    expect(answeredBy("Local model", "qwen2.5-1.5b", { provider: "groq", label: "Groq", reason: "unreachable" })).toBe("Local model · qwen2.5-1.5b, because Groq was unreachable");
    expect(reasonWords({ provider: "openai", label: "OpenAI", reason: "down" })).toBe("OpenAI is down");
    expect(reasonWords({ provider: "groq", label: "Groq", reason: "key_needed_for_host" })).toBe("Groq needs its key for a new host");
  });
});
