//! The Hearth server binary's library half: configuration and start-up, so
//! that tests and other programs can run a server in-process.

pub mod backup;
pub mod clients;
pub mod config;
pub mod explain;
pub mod import;
pub mod keys;
pub mod launch;
pub mod logs;
mod progress;
pub mod server;
pub mod token;
pub mod users;
