import { describe, it, expect, vi } from "vitest";
import { render, screen } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import Composer from "./Composer.svelte";

describe("Composer", () => {
  it("Enter sends the trimmed text and clears the box; Shift+Enter makes a newline", async () => {
    const onsend = vi.fn();
    const user = userEvent.setup();
    render(Composer, { onsend });
    const box = screen.getByTestId("composer-input") as HTMLTextAreaElement;
    await user.type(box, "  first line{Shift>}{Enter}{/Shift}second  ");
    expect(box.value).toBe("  first line\nsecond  ");
    expect(onsend).not.toHaveBeenCalled();
    await user.type(box, "{Enter}");
    expect(onsend).toHaveBeenCalledExactlyOnceWith("first line\nsecond");
    expect(box.value).toBe("");
  });

  it("does not send blank text", async () => {
    const onsend = vi.fn();
    const user = userEvent.setup();
    render(Composer, { onsend });
    await user.type(screen.getByTestId("composer-input"), "   {Enter}");
    expect(onsend).not.toHaveBeenCalled();
    expect(screen.getByTestId("send-button")).toBeDisabled();
  });

  it("the Send button sends", async () => {
    const onsend = vi.fn();
    const user = userEvent.setup();
    render(Composer, { onsend });
    await user.type(screen.getByTestId("composer-input"), "hello");
    await user.click(screen.getByTestId("send-button"));
    expect(onsend).toHaveBeenCalledWith("hello");
  });

  it("when disabled nothing can be typed or sent, and the hint says why", async () => {
    const onsend = vi.fn();
    const user = userEvent.setup();
    render(Composer, { onsend, disabled: true, hint: "Add a key first." });
    const box = screen.getByTestId("composer-input");
    expect(box).toBeDisabled();
    await user.type(box, "hi{Enter}");
    expect(onsend).not.toHaveBeenCalled();
    expect(screen.getByTestId("send-button")).toBeDisabled();
    expect(screen.getByTestId("composer-hint")).toHaveTextContent("Add a key first.");
    expect(box).toHaveAttribute("aria-describedby", "composer-hint");
  });
});
