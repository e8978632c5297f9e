//! credhost: a credential service that speaks obshell's credential API.

pub mod api;
pub mod audit;
pub mod budget;
pub mod capabilities;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod connections;
pub mod data_dir;
pub mod fields;
pub mod keys;
pub mod local_socket;
pub mod metrics;
pub mod plugins;
pub mod priority;
pub mod secret;
pub mod server;
pub mod service;
pub mod store;
pub mod tls;
