//! The Virtualmin remote.cgi client: the settings every client is built from (validated when
//! drover starts), the reading of every kind of answer the server gives, and the error
//! taxonomy callers decide on.

mod domain;
mod error;
mod reply;
mod settings;

pub use domain::{Disabled, DomainInfo, DomainKind, Quota};
pub use error::{ErrorKind, VirtualminError, classify_error, classify_failure};
pub use reply::{Record, Reply, parse_reply, text_records};
pub use settings::{Timeouts, VirtualminSettings};
