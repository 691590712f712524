// Generated from crates/core/src/failure.rs by ts-rs; do not edit.
// UPDATE_TS=1 cargo test -p understudy-core failure rewrites it; the test fails when it is stale.

export type ErrorClass = "outage" | "rate-limit" | "account" | "request" | "local" | "setup" | "busy";

export type NextAction = "add_key" | "download_model" | "open_settings" | "retry" | "none";
