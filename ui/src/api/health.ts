import { Channel } from "@tauri-apps/api/core";
import { call } from "./call";
import type { Breaker, Health, HealthSnapshot, ProviderHealth, Route } from "./generated/types";

// Generated from the Rust types (src-tauri/src/ts.rs): per provider its health, breaker, model and
// key problem; `route` is where the next request goes (a provider id, "local", or "none").
export type { Breaker, Health, HealthSnapshot, ProviderHealth, Route };

/** Calls `onSnapshot` now and on every health change. */
export function watchHealth(onSnapshot: (s: HealthSnapshot) => void): Promise<void> {
  const ch = new Channel<HealthSnapshot>();
  ch.onmessage = onSnapshot;
  return call("watch_health", { channel: ch });
}
