import { call } from "./call";
import type { StoreNotice } from "./generated/types";

/** What opening the chat history found wrong at start and what was done (generated, tagged by `kind`). */
export type { StoreNotice };

/** The notice from this start, null when the history opened as it was or it was dismissed. */
export const getStoreNotice = () => call("store_notice");
/** The user has read it: a rebuilt window does not show it again. */
export const dismissStoreNotice = () => call("dismiss_store_notice");
