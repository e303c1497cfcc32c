//! Shared helpers for end-to-end tests that run the real Codex CLI.
#![allow(dead_code)]

pub mod codex_cli;
pub mod fidelity;
pub mod mock_responses;
