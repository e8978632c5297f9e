//! credhost: a credential service that speaks obshell's credential API.

pub mod api;
pub mod capabilities;
pub mod client;
pub mod clock;
pub mod config;
pub mod connections;
pub mod data_dir;
pub mod fields;
pub mod keys;
pub mod plugins;
pub mod priority;
pub mod secret;
pub mod server;
pub mod service;
pub mod store;
pub mod tls;
