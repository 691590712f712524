//! Health monitor, circuit breaker, status-page hint and failover (including mid-stream
//! continuation) across the provider chain; owns the `watch` of health snapshots.
//!
//! Empty until the "Automatic failover" issue lands (see ARCHITECTURE.md).
