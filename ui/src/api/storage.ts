import { call } from "./call";

/** What opening the chat history found wrong at start and what was done
 * (Rust: understudy_store::StoreNotice, tagged by `kind`). */
export type StoreNotice =
  /** Not a sound database: moved to `kept_as` (never deleted), a new history started. */
  | { kind: "damaged"; path: string; kept_as: string; detail: string }
  /** Written by a newer Understudy: kept for it at `kept_as`, a new history started. */
  | { kind: "newer"; path: string; kept_as: string; found: number; supported: number }
  /** Another program held it locked for `waited_secs`: this session's chats are not saved. */
  | { kind: "locked"; path: string; waited_secs: number }
  /** It could not be opened (or moved aside): this session's chats are not saved. */
  | { kind: "unavailable"; path: string; detail: string };

/** The notice from this start, null when the history opened as it was or it was dismissed. */
export const getStoreNotice = () => call<StoreNotice | null>("store_notice");
/** The user has read it: a rebuilt window does not show it again. */
export const dismissStoreNotice = () => call<void>("dismiss_store_notice");
