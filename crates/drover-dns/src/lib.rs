//! DNS providers (PowerDNS servers and Cloudflare) behind one trait, and the plan/apply of the
//! zones drover holds. The clients arrive with DNS support; this crate holds its place in the
//! workspace so the dependency graph is fixed from the start.
