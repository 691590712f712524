import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { EMPTY, restore, Saver, type Snapshot } from "./restore";

describe("restore", () => {
  it("gives back what was saved", () => {
    const s: Snapshot = { conversationId: 7, page: "models", draft: "half a quest", scrollTop: 120 };
    expect(restore(JSON.stringify(s))).toEqual(s);
  });

  it("a fresh window or anything malformed starts empty", () => {
    for (const json of [null, "", "not json", "null", "42", '"text"', "[]"]) expect(restore(json)).toEqual(EMPTY);
  });

  it("keeps the good fields of a damaged snapshot", () => {
    expect(restore(JSON.stringify({ conversationId: "7", page: "elsewhere", draft: 3, scrollTop: -5 }))).toEqual(EMPTY);
    expect(restore(JSON.stringify({ conversationId: 1.5, page: "settings", draft: "hi", scrollTop: null }))).toEqual({ conversationId: null, page: "settings", draft: "hi", scrollTop: null });
  });

  it("a page a notification asked for wins; an unknown one is ignored", () => {
    const saved = JSON.stringify({ conversationId: 3, page: "chat", draft: "x", scrollTop: 10 });
    expect(restore(saved, "models")).toMatchObject({ conversationId: 3, page: "models", draft: "x" });
    expect(restore(saved, "evil")).toMatchObject({ page: "chat" });
    expect(restore(null, "settings").page).toBe("settings");
  });
});

describe("Saver", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());
  const snap = (draft: string): Snapshot => ({ ...EMPTY, conversationId: 1, draft });

  it("writes the latest snapshot once per period while typing", () => {
    const write = vi.fn(async () => {});
    const saver = new Saver(write, 300);
    saver.save(snap("h"));
    saver.save(snap("he"));
    saver.save(snap("hel"));
    expect(write).not.toHaveBeenCalled();
    vi.advanceTimersByTime(300);
    expect(write).toHaveBeenCalledExactlyOnceWith(JSON.stringify(snap("hel")));
    saver.save(snap("hell"));
    vi.advanceTimersByTime(300);
    expect(write).toHaveBeenLastCalledWith(JSON.stringify(snap("hell")));
    expect(write).toHaveBeenCalledTimes(2);
  });

  it("the same snapshot again is not written again", () => {
    const write = vi.fn(async () => {});
    const saver = new Saver(write, 300);
    saver.save(snap("a"));
    vi.advanceTimersByTime(300);
    saver.save(snap("a"));
    vi.advanceTimersByTime(300);
    expect(write).toHaveBeenCalledTimes(1);
  });

  it("flush writes a pending snapshot at once (the window is being hidden)", () => {
    const write = vi.fn(async () => {});
    const saver = new Saver(write, 300);
    saver.save(snap("typed just now"));
    saver.flush();
    expect(write).toHaveBeenCalledExactlyOnceWith(JSON.stringify(snap("typed just now")));
    vi.advanceTimersByTime(1000);
    saver.flush();
    expect(write).toHaveBeenCalledTimes(1);
  });

  it("a failed write is tried again with the next save", async () => {
    const write = vi.fn().mockRejectedValueOnce(new Error("gone")).mockResolvedValue(undefined);
    const saver = new Saver(write, 300);
    saver.save(snap("a"));
    saver.flush();
    await Promise.resolve();
    await Promise.resolve();
    saver.save(snap("a"));
    saver.flush();
    expect(write).toHaveBeenCalledTimes(2);
  });
});
