//! drover: the provisioning control plane of a web-hosting business. This crate wires the
//! parts: configuration, the store, the HTTP API and the command line.

pub mod api;
pub mod bulk;
pub mod cli;
pub mod commands;
pub mod config;
pub mod engine;
pub mod metrics;
mod serve;
pub mod web;
