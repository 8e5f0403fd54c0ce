//! Running a migration: status, cleanup, requeue and restarts, the errors and mistakes
//! a user makes, telemetry, and memory that stays bounded.

mod cleanup;
mod errors;
mod memory;
mod mistakes;
mod runs;
mod telemetry;
