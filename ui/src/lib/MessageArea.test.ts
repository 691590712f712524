import { describe, it, expect, vi } from "vitest";
import { render, cleanup, fireEvent } from "@testing-library/svelte";
import MessageArea from "./MessageArea.svelte";
import type { Message } from "../api/chat";

function message(over: Partial<Message>): Message {
  return {
    id: 1, conversation_id: 1, role: "assistant", content: "", provider: "openai", model: "gpt-4o-mini", failover_reason: null, prompt_tokens: null,
    completion_tokens: null, first_token_ms: null, total_ms: null, status: "complete", error: null, error_class: null, next_action: null, created_at: 0, parts: [], left_out: null, ...over,
  };
}

describe("an offline answer to a conversation longer than its context", () => {
  it("says how many older messages were left out, and nothing when none were", () => {
    const { getByTestId } = render(MessageArea, { messages: [message({ id: 1, provider: "local", content: "Sure.", left_out: 6 })] });
    expect(getByTestId("left-out")).toHaveTextContent("The 6 oldest messages were left out");
    cleanup();
    const whole = render(MessageArea, { messages: [message({ id: 2, provider: "local", content: "Sure." })] });
    expect(whole.queryByTestId("left-out")).toBeNull();
  });
});

describe("a reasoning model answering", () => {
  it("shows its thinking collapsed apart from the answer", () => {
    const live = { conversationId: 1, messageId: 3, provider: "local", label: "Local model", model: "qwen3-1.7b", failover: null, text: "", reasoning: "The user greets me.", switched: null };
    const { getByTestId, rerender } = render(MessageArea, { messages: [], live });
    const details = getByTestId("live-reasoning");
    expect(details).not.toHaveAttribute("open");
    expect(details.querySelector("summary")).toHaveTextContent("Thinking…");
    expect(details).toHaveTextContent("The user greets me.");
    expect(getByTestId("live-text")).not.toHaveTextContent("The user greets me.");
    rerender({ messages: [], live: { ...live, text: "Hello!" } });
    expect(getByTestId("live-reasoning").querySelector("summary")).toHaveTextContent("Thought");
    expect(getByTestId("live-text")).toHaveTextContent("Hello!");
  });
});

describe("an outage with no offline model", () => {
  it("says so and offers the model library", async () => {
    const onmodels = vi.fn();
    const m = message({
      status: "error",
      error: "OpenAI had a server error (503). No offline model is installed to answer meanwhile: download one in Models, then try again.",
      error_class: "outage",
      next_action: "download_model",
    });
    const { getByTestId } = render(MessageArea, { messages: [m], onmodels });
    expect(getByTestId("message-error")).toHaveTextContent("No offline model is installed");
    await fireEvent.click(getByTestId("open-models-from-error"));
    expect(onmodels).toHaveBeenCalled();
    cleanup();
    const other = render(MessageArea, {
      messages: [{ ...m, error: "OpenAI rejected the API key (401). Check the API key in Settings.", error_class: "account", next_action: "add_key" }],
      onmodels,
    });
    expect(other.queryByTestId("open-models-from-error")).toBeNull();
  });

  it("offers the library from the typed next action, whatever the words say", () => {
    const onmodels = vi.fn();
    // Words that never mention Models, as a translated or reworded message would be.
    const typed = message({ status: "error", error: "Nothing could answer.", error_class: "setup", next_action: "download_model" });
    const { getByTestId } = render(MessageArea, { messages: [typed], onmodels });
    expect(getByTestId("open-models-from-error")).toBeInTheDocument();
    cleanup();
    // The old words without the action (an answer stored before the action was kept): no button.
    const untyped = message({ status: "error", error: "OpenAI is down. No offline model is installed: download one in Models, then try again." });
    const old = render(MessageArea, { messages: [untyped], onmodels });
    expect(old.queryByTestId("open-models-from-error")).toBeNull();
  });
});

describe("who wrote an answer", () => {
  it("names a stored answer's provider by the chain's name for it", () => {
    const { getByTestId } = render(MessageArea, { messages: [message({ provider: "groq", model: "llama-3.3-70b" })], labels: { groq: "Groq" } });
    expect(getByTestId("message-badge")).toHaveTextContent(/^Groq · llama-3.3-70b$/);
  });

  it("names the live answer's writer and why, from the typed reason", () => {
    const live = { conversationId: 1, messageId: 3, provider: "groq", label: "Groq", model: "llama-3.3-70b", failover: "OpenAI did not answer within 10 s", because: { provider: "openai", label: "OpenAI", reason: "timed_out" as const }, text: "Hi", reasoning: "", switched: null };
    const { getByTestId } = render(MessageArea, { messages: [], live });
    expect(getByTestId("message-badge")).toHaveTextContent("Groq · llama-3.3-70b, because OpenAI timed out");
  });
});
