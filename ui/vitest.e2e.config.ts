import { defineConfig } from "vitest/config";

// End-to-end specs drive the real desktop app through tauri-driver; run by xtask/e2e/session.sh.
export default defineConfig({
  test: {
    environment: "node",
    include: ["e2e/**/*.e2e.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
