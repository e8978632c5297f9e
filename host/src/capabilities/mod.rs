//! What the host lends a plugin for the duration of one call.

pub mod grant;
pub mod log;
pub mod ssh;

pub use grant::Grant;
pub use ssh::{LoginResult, Outcome, SshClient, SshSettings};
