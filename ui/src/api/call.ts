// The one place the UI talks to the Rust side. Components import typed functions from
// ui/src/api/*; only this folder may call invoke() (a test enforces it).
import { invoke } from "@tauri-apps/api/core";
import type { Commands, IpcCode, IpcError } from "./generated/types";

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

/** A command src-tauri registers (generated from src-tauri/src/commands.rs). */
export type Command = keyof Commands;
/** A command's arguments, as the window names them; left out for a command that takes none. */
type Args<K extends Command> = Record<string, never> extends Commands[K]["args"] ? [args?: Commands[K]["args"]] : [args: Commands[K]["args"]];

/** invoke() typed by the generated command map, with errors normalised to ApiError (Rust sends `{ code, message }`). */
export async function call<K extends Command>(cmd: K, ...[args]: Args<K>): Promise<Commands[K]["result"]> {
  try {
    return await invoke<Commands[K]["result"]>(cmd, args);
  } catch (e) {
    if (isIpcError(e)) throw new ApiError(e.code, e.message);
    throw new ApiError("ipc", typeof e === "string" ? e : e instanceof Error ? e.message : String(e));
  }
}
