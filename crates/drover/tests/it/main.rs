//! drover as its users meet it: the HTTP API (through the real router, on both databases) and
//! the `drover` command itself.

mod api;
mod command;
mod dns;
mod drift;
mod failover;
mod fleet_scale;
mod health;
mod migrate;
mod provisioning;
