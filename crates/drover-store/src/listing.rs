//! The filters of the listings an API client pages through, as SQL: only the filters given are
//! in the `WHERE` clause, each a plain comparison an index can serve (a `($1 IS NULL OR col =
//! $1)` for a filter left out keeps SQLite from using any index, so every listing scanned the
//! whole table). Public so that the contract suite can check with `EXPLAIN` that they do.

use drover_core::{CustomerId, ServerId, ServiceStatus};

use crate::{AccountFilter, ServiceFilter};

/// A value bound to one of a listing's placeholders, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    Int(i64),
    Text(String),
}

/// `WHERE … ORDER BY … LIMIT …` and what its placeholders (`$1`…) are bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    pub sql: String,
    pub binds: Vec<Bind>,
}

/// Conditions joined with `AND`, each taking the next placeholder.
struct Where {
    conditions: Vec<String>,
    binds: Vec<Bind>,
}

impl Where {
    fn new() -> Self {
        Self {
            conditions: Vec::new(),
            binds: Vec::new(),
        }
    }

    /// `column op $n`.
    fn bound(&mut self, column: &str, op: &str, value: Bind) {
        self.binds.push(value);
        self.conditions
            .push(format!("{column} {op} ${}", self.binds.len()));
    }

    fn plain(&mut self, condition: &str) {
        self.conditions.push(condition.to_owned());
    }

    fn ordered(mut self, order: &str, limit: u32) -> Tail {
        self.binds.push(Bind::Int(i64::from(limit)));
        Tail {
            sql: format!(
                "WHERE {} ORDER BY {order} LIMIT ${}",
                self.conditions.join(" AND "),
                self.binds.len()
            ),
            binds: self.binds,
        }
    }
}

/// Accounts, by id, after the page's cursor.
pub fn accounts(filter: &AccountFilter) -> Tail {
    let mut w = Where::new();
    w.bound("id", ">", Bind::Int(filter.page.after.unwrap_or(0)));
    if let Some(domain) = &filter.domain {
        w.bound("domain", "=", Bind::Text(domain.as_str().to_owned()));
    }
    if let Some(server) = filter.server_id {
        w.bound("server_id", "=", Bind::Int(ServerId::get(server)));
    }
    if filter.failed {
        w.plain("failure IS NOT NULL");
    }
    w.ordered("id", filter.page.limit)
}

/// Services (`s`, joined with their accounts), by id, after the page's cursor.
pub fn services(filter: &ServiceFilter) -> Tail {
    let mut w = Where::new();
    w.bound("s.id", ">", Bind::Int(filter.page.after.unwrap_or(0)));
    if let Some(customer) = filter.customer_id {
        w.bound("s.customer_id", "=", Bind::Int(CustomerId::get(customer)));
    }
    if let Some(status) = filter.status {
        w.bound(
            "s.status",
            "=",
            Bind::Text(ServiceStatus::as_str(status).to_owned()),
        );
    }
    w.ordered("s.id", filter.page.limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_filters_given_are_in_the_query() {
        let all = accounts(&AccountFilter::default());
        assert_eq!(all.sql, "WHERE id > $1 ORDER BY id LIMIT $2");
        let one = accounts(&AccountFilter {
            domain: Some(drover_core::DomainName::parse("știri.ro").unwrap()),
            failed: true,
            ..AccountFilter::default()
        });
        assert_eq!(
            one.sql,
            "WHERE id > $1 AND domain = $2 AND failure IS NOT NULL ORDER BY id LIMIT $3"
        );
        assert_eq!(one.binds[1], Bind::Text("xn--tiri-pxb.ro".into()));
    }
}
