//! The client held to the real server: every captured answer of Virtualmin 8.1.

mod captures;
mod client;
mod simulator;
