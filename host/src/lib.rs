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
pub mod listeners;
pub mod local_socket;
pub mod metrics;
pub mod no_core_dumps;
pub mod open_files;
pub mod plugins;
pub mod priority;
pub mod secret;
pub mod server;
pub mod service;
pub mod store;
pub mod tls;

/// The allocator of every binary built on this crate (the server, its
/// tests and benchmarks). A request allocates many small blocks on one
/// worker thread that another thread (the audit writer, the blocking pool)
/// frees; glibc's allocator serialises such frees on its arena locks, and
/// under load the waits on those locks cost more than the work itself.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
