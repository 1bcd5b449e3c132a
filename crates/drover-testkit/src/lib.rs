//! Test harnesses for drover: a throwaway PostgreSQL database per test. The Virtualmin simulator,
//! the Cloudflare fake and the PowerDNS launcher join it with their features.

mod postgres;

pub use postgres::TestPostgres;
