// Architecture rule: only ui/src/api/* may talk to Tauri. Components call typed functions.
import { describe, it, expect } from "vitest";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";

const SRC = join(__dirname);

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : /\.(ts|svelte)$/.test(name) ? [p] : [];
  });
}

describe("architecture", () => {
  it("only ui/src/api calls invoke() or imports @tauri-apps/api", () => {
    const offenders = files(SRC)
      .filter((f) => !relative(SRC, f).startsWith(`api${sep}`) && !f.endsWith(".test.ts"))
      .filter((f) => /\binvoke\s*\(|@tauri-apps\/api/.test(readFileSync(f, "utf8")))
      .map((f) => relative(SRC, f));
    expect(offenders).toEqual([]);
  });

  it("the scan sees the component tree", () => {
    const all = files(SRC).map((f) => relative(SRC, f));
    expect(all).toContain("App.svelte");
    expect(all).toContain(join("api", "call.ts"));
  });
});
