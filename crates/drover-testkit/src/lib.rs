//! Test harnesses for drover: throwaway PostgreSQL databases, a Virtualmin remote.cgi simulator
//! (also the `virtualmin-sim` binary), real PowerDNS servers on loopback ports, and a stateful
//! Cloudflare API fake (also the `cloudflare-fake` binary), and a real headless browser.

pub mod browser;
pub mod cloudflare;
mod postgres;
pub mod powerdns;
mod sshd;
pub mod virtualmin;

pub use browser::Browser;
pub use cloudflare::{CloudflareFake, FakeConfig};
pub use postgres::TestPostgres;
pub use powerdns::PowerDns;
pub use sshd::TestSshd;
/// Runs each named `async fn test(harness)` once per database: a `postgres::test` built with
/// `$postgres().await` and a `sqlite::test` built with `$sqlite().await`, so one body holds both
/// backends to the same behaviour.
#[macro_export]
macro_rules! on_both_databases {
    (postgres: $postgres:ident, sqlite: $sqlite:ident; $($test:ident),+ $(,)?) => {
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                super::$test(super::$postgres().await).await;
            })+
        }
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                super::$test(super::$sqlite().await).await;
            })+
        }
    };
}
