//! credhost: a credential service that speaks obshell's credential API.

pub mod capabilities;
pub mod plugins;
pub mod secret;
