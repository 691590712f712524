// The one place the UI talks to the Rust side. Components import typed functions from
// ui/src/api/*; only this folder may call invoke() (a test enforces it).
import { invoke } from "@tauri-apps/api/core";
import type { IpcCode, IpcError } from "./generated/types";

/**
 * Why a command failed, machine-readable: src-tauri's `IpcCode` (generated), or "ipc" when the
 * call itself failed. A failed connection test carries its failure class here.
 */
export type ApiErrorCode = IpcCode | "ipc";

/** A command failed. `code` is stable and machine-readable (what code branches on); `message` is for people (what the UI shows). */
export class ApiError extends Error {
  readonly code: ApiErrorCode;
  constructor(code: ApiErrorCode, message: string) {
    super(message);
    this.name = "ApiError";
    this.code = code;
  }
}

/** What the Rust side rejects with (generated). */
function isIpcError(e: unknown): e is IpcError {
  return typeof e === "object" && e !== null && typeof (e as { code?: unknown }).code === "string" && typeof (e as { message?: unknown }).message === "string";
}

/** invoke() with errors normalised to ApiError (Rust sends `{ code, message }`). */
export async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    if (isIpcError(e)) throw new ApiError(e.code, e.message);
    throw new ApiError("ipc", typeof e === "string" ? e : e instanceof Error ? e.message : String(e));
  }
}
