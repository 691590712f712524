// What the window puts back when it is opened again after its web view was released in the
// tray: the open conversation and page, where the messages were scrolled to, and a half-typed
// message. The snapshot lives in the app (ui/src/api/ui-state.ts); messages come from the store.

export type Page = "chat" | "settings" | "models";

export interface Snapshot {
  conversationId: number | null;
  page: Page;
  draft: string;
  /** Pixels from the top of the message list; null = at the bottom (following new text). */
  scrollTop: number | null;
}

export const EMPTY: Snapshot = { conversationId: null, page: "chat", draft: "", scrollTop: null };

const PAGES: readonly string[] = ["chat", "settings", "models"];

/** The snapshot in `json` (and the page a notification asked for, which wins), or what a
 * fresh window shows; anything malformed counts as nothing. */
export function restore(json: string | null, requested: string | null = null): Snapshot {
  let s: Snapshot = { ...EMPTY };
  try {
    const v = json ? JSON.parse(json) : null;
    if (v && typeof v === "object") {
      s = {
        conversationId: Number.isSafeInteger(v.conversationId) ? v.conversationId : null,
        page: PAGES.includes(v.page) ? v.page : "chat",
        draft: typeof v.draft === "string" ? v.draft : "",
        scrollTop: typeof v.scrollTop === "number" && Number.isFinite(v.scrollTop) && v.scrollTop >= 0 ? v.scrollTop : null,
      };
    }
  } catch {
    // a broken snapshot: start fresh
  }
  if (requested && PAGES.includes(requested)) s.page = requested as Page;
  return s;
}

/** Writes the latest snapshot at most once per `ms` (the last one always lands); `flush` writes
 * a pending one now (the window is being hidden). Same text twice is written once. */
export class Saver {
  private pending: string | null = null;
  private last: string | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly write: (json: string) => Promise<void>,
    private readonly ms = 300,
  ) {}

  save(s: Snapshot): void {
    const json = JSON.stringify(s);
    if (json === this.last && this.timer === null) return;
    this.pending = json;
    this.timer ??= setTimeout(() => this.flush(), this.ms);
  }

  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const json = this.pending;
    this.pending = null;
    if (json === null || json === this.last) return;
    this.last = json;
    this.write(json).catch(() => (this.last = null));
  }
}
