// Generated from src-tauri/src/error.rs by ts-rs; do not edit.
// UPDATE_TS=1 cargo test -p understudy-app ts_types rewrites it; the test fails when it is stale.

export type IpcCode = "config" | "io" | "busy" | "empty" | "not_editable" | "nothing_to_answer" | "not_found" | "store" | "autostart" | "hub" | "model_id" | "import" | "remove" | "link" | "too_large" | "invalid_key" | "invalid_name" | "secrets" | "outage" | "rate_limit" | "account" | "request" | "local" | "setup";
