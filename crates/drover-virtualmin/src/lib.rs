//! The Virtualmin remote.cgi client. Today: the settings every client is built from, validated
//! when drover starts, so a bad value stops the start instead of the first provisioning job.

mod settings;

pub use settings::{Timeouts, VirtualminSettings};
