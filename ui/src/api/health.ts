import { Channel } from "@tauri-apps/api/core";
import { call } from "./call";
import type { Mode } from "./app";
import type { KeyProblem } from "./providers";

export type Health = "healthy" | "degraded" | "outage";
export type Breaker = { state: "closed" } | { state: "open"; until_ms: number } | { state: "half-open"; successes: number };

export interface ProviderHealth {
  id: string;
  label: string;
  health: Health;
  breaker: Breaker;
  /** Unix ms when `health` last changed. */
  since: number;
  last_error: string | null;
  /** The model it is asked for. */
  model?: string;
  /** Why no key can be sent to it; null when it has one. */
  key_problem?: KeyProblem | null;
}

/** Rust: understudy_router::HealthSnapshot. */
export interface HealthSnapshot {
  mode: Mode;
  providers: ProviderHealth[];
  /** Where the next request goes: a provider id, "local", or "none". */
  route: string;
  local_model: string | null;
}

/** Calls `onSnapshot` now and on every health change. */
export function watchHealth(onSnapshot: (s: HealthSnapshot) => void): Promise<void> {
  const ch = new Channel<HealthSnapshot>();
  ch.onmessage = onSnapshot;
  return call<void>("watch_health", { channel: ch });
}
