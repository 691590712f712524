// Architecture rule: only ui/src/api/* may talk to Tauri. Components (and their tests) call the
// typed functions in ui/src/api instead.
import { describe, it, expect } from "vitest";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join, relative, sep } from "node:path";

const SRC = __dirname;
const SELF = basename(__filename);

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : /\.(ts|svelte)$/.test(name) ? [p] : [];
  });
}

// A call of invoke, or any module specifier (import, dynamic import, vi.mock) of the Tauri API.
const CALL = /\binvoke\s*\(/;
const TAURI_SPECIFIER = /["'`]@tauri-apps\/api(?:\/[\w/-]*)?["'`]/;
function talksToTauri(source: string): boolean {
  return CALL.test(source) || TAURI_SPECIFIER.test(source);
}

describe("architecture", () => {
  it("no file outside ui/src/api calls invoke or imports the Tauri API", () => {
    const offenders = files(SRC)
      .map((f) => relative(SRC, f))
      .filter((f) => !f.startsWith(`api${sep}`) && f !== SELF)
      .filter((f) => talksToTauri(readFileSync(join(SRC, f), "utf8")));
    expect(offenders).toEqual([]);
  });

  it("the scan sees the whole tree, tests included", () => {
    const all = files(SRC).map((f) => relative(SRC, f));
    for (const f of ["App.svelte", "main.ts", "App.test.ts", join("lib", "Composer.svelte"), join("api", "call.ts")]) {
      expect(all).toContain(f);
    }
  });

  it("the detector catches what the rule forbids", () => {
    const q = '"';
    const pkg = ["@tauri-apps", "api"].join("/");
    expect(talksToTauri(`import { invoke } from ${q}${pkg}/core${q};`)).toBe(true);
    expect(talksToTauri(`const m = await import('${pkg}/event');`)).toBe(true);
    expect(talksToTauri(`vi.mock(${q}${pkg}/core${q}, () => ({}));`)).toBe(true);
    expect(talksToTauri(["await ", "invoke", '("app_info")'].join(""))).toBe(true);
    expect(talksToTauri(["window.__TAURI__.core.", "invoke", " ('x')"].join(""))).toBe(true);
    expect(talksToTauri(`import { getAppInfo } from "./api/app";`)).toBe(false);
    expect(talksToTauri(`const invoked = 1; reinvoke(2);`)).toBe(false);
  });
});
