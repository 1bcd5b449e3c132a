// The FleetStore on one SQL backend, included after `sql_store.rs` by `postgres.rs` and
// `sqlite.rs` (it uses that file's transaction macros and helpers).

mod fleet_sql {
    use drover_core::{
        AccountId, DesiredState, DomainName, DriftAction, DriftFinding, DriftKind, Expected,
        HealthPolicy, HealthProbe, HealthStreak, MoveState, ServerId, ServerState, ServiceId,
        Usage, Verdict, next_health,
    };
    use jiff_sqlx::Timestamp as SqlTimestamp;
    use serde_json::json;

    use super::{SqlStore, Tx, append_audit, append_event, begin, begin_read};
    use crate::fleet_store::*;
    use crate::rows::{corrupt, sql_now, to_json_list};
    use crate::{RequestContext, Result, StoreError};

    #[derive(sqlx::FromRow)]
    struct HealthRow {
        server_id: i64,
        state: String,
        failures: i64,
        degraded: i64,
        healthy: i64,
        verdict: String,
        reasons: String,
        probe: String,
        checked_at: SqlTimestamp,
    }

    fn count(value: i64) -> u32 {
        u32::try_from(value).unwrap_or(u32::MAX)
    }

    impl HealthRow {
        fn into_model(self) -> Result<ServerHealth> {
            let verdict = match self.verdict.as_str() {
                "healthy" => Verdict::Healthy,
                "degraded" => Verdict::Degraded,
                "unavailable" => Verdict::Unavailable,
                other => return Err(corrupt("health verdict", other)),
            };
            Ok(ServerHealth {
                server_id: ServerId(self.server_id),
                state: ServerState::parse(&self.state).map_err(|e| corrupt("server state", e))?,
                verdict,
                reasons: serde_json::from_str(&self.reasons).map_err(|e| corrupt("reasons", e))?,
                probe: serde_json::from_str(&self.probe).map_err(|e| corrupt("probe", e))?,
                streak: HealthStreak {
                    failures: count(self.failures),
                    degraded: count(self.degraded),
                    healthy: count(self.healthy),
                },
                checked_at: self.checked_at.to_jiff(),
            })
        }
    }

    async fn fetch_health(tx: &mut Tx, server: ServerId) -> Result<Option<ServerHealth>> {
        sqlx::query_as::<_, HealthRow>(
            "SELECT h.server_id, s.state, h.failures, h.degraded, h.healthy, h.verdict, h.reasons, \
             h.probe, h.checked_at FROM server_health h JOIN servers s ON s.id = h.server_id \
             WHERE h.server_id = $1",
        )
        .bind(server.get())
        .fetch_optional(&mut **tx)
        .await?
        .map(HealthRow::into_model)
        .transpose()
    }

    fn verdict_name(verdict: Verdict) -> &'static str {
        match verdict {
            Verdict::Healthy => "healthy",
            Verdict::Degraded => "degraded",
            Verdict::Unavailable => "unavailable",
        }
    }

    #[derive(sqlx::FromRow)]
    struct DriftRow {
        id: i64,
        server_id: i64,
        kind: String,
        domain: String,
        account_id: Option<i64>,
        expected: Option<String>,
        found: Option<String>,
        action: Option<String>,
        found_at: SqlTimestamp,
        resource: Option<String>,
    }

    pub(super) fn action_name(action: DriftAction) -> &'static str {
        match action {
            DriftAction::Log => "log",
            DriftAction::Enforce => "enforce",
            DriftAction::Quarantine => "quarantine",
        }
    }

    impl DriftRow {
        fn into_model(self) -> Result<DriftRecord> {
            let action = match self.action.as_deref() {
                None => None,
                Some("log") => Some(DriftAction::Log),
                Some("enforce") => Some(DriftAction::Enforce),
                Some("quarantine") => Some(DriftAction::Quarantine),
                Some(other) => return Err(corrupt("drift action", other)),
            };
            Ok(DriftRecord {
                id: self.id,
                server_id: ServerId(self.server_id),
                finding: DriftFinding {
                    kind: DriftKind::parse(&self.kind).map_err(|e| corrupt("drift kind", e))?,
                    domain: self.domain,
                    account_id: self.account_id.map(AccountId),
                    expected: self.expected,
                    found: self.found,
                    resource: self.resource,
                },
                action,
                found_at: self.found_at.to_jiff(),
            })
        }
    }

    const SELECT_DRIFT: &str = "SELECT id, server_id, kind, domain, account_id, expected, found, \
        action, found_at, resource FROM drift_findings";

    async fn fetch_drift(tx: &mut Tx, server: Option<ServerId>) -> Result<Vec<DriftRecord>> {
        sqlx::query_as::<_, DriftRow>(sqlx::AssertSqlSafe(format!(
            "{SELECT_DRIFT} WHERE ($1 IS NULL OR server_id = $1) ORDER BY id"
        )))
        .bind(server.map(ServerId::get))
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(DriftRow::into_model)
        .collect()
    }

    #[derive(sqlx::FromRow)]
    struct MigrationRow {
        account_id: i64,
        from_server: i64,
        to_server: i64,
        state: String,
        delete_after_ms: i64,
        confirmed: bool,
        failover: bool,
        restore_from: Option<i64>,
        without_content: bool,
    }

    impl MigrationRow {
        fn into_model(self) -> Result<Migration> {
            Ok(Migration {
                account_id: AccountId(self.account_id),
                from_server: ServerId(self.from_server),
                to_server: ServerId(self.to_server),
                state: MoveState::parse(&self.state).map_err(|e| corrupt("move state", e))?,
                delete_after: jiff::Timestamp::from_millisecond(self.delete_after_ms)
                    .map_err(|e| corrupt("delete_after", e))?,
                confirmed: self.confirmed,
                failover: self.failover,
                restore_from: self.restore_from.map(drover_core::BackupId),
                without_content: self.without_content,
            })
        }
    }

    pub(super) async fn fetch_migration(
        tx: &mut Tx,
        account: AccountId,
    ) -> Result<Option<Migration>> {
        sqlx::query_as::<_, MigrationRow>(
            "SELECT account_id, from_server, to_server, state, delete_after_ms, confirmed, \
             failover, restore_from, without_content FROM account_migrations \
             WHERE account_id = $1",
        )
        .bind(account.get())
        .fetch_optional(&mut **tx)
        .await?
        .map(MigrationRow::into_model)
        .transpose()
    }

    #[derive(sqlx::FromRow)]
    struct UsageRow {
        account_id: i64,
        service_id: i64,
        domain: String,
        server_id: i64,
        disk_bytes: Option<i64>,
        bandwidth_bytes: Option<i64>,
        mailboxes: i64,
        databases: i64,
        database_bytes: i64,
        measured_at: SqlTimestamp,
    }

    /// Figures are counts and byte sizes: never negative, and within i64 on any real server.
    fn to_sql(figure: u64) -> i64 {
        i64::try_from(figure).unwrap_or(i64::MAX)
    }

    fn from_sql(what: &str, figure: i64) -> Result<u64> {
        u64::try_from(figure).map_err(|_| corrupt(what, figure))
    }

    impl UsageRow {
        fn into_model(self) -> Result<AccountUsage> {
            Ok(AccountUsage {
                account_id: AccountId(self.account_id),
                service_id: ServiceId(self.service_id),
                domain: DomainName::parse(&self.domain)
                    .map_err(|e| corrupt("account domain", e))?,
                server_id: ServerId(self.server_id),
                usage: Usage {
                    disk_bytes: self
                        .disk_bytes
                        .map(|b| from_sql("disk_bytes", b))
                        .transpose()?,
                    bandwidth_bytes: self
                        .bandwidth_bytes
                        .map(|b| from_sql("bandwidth_bytes", b))
                        .transpose()?,
                    mailboxes: from_sql("mailboxes", self.mailboxes)?,
                    databases: from_sql("databases", self.databases)?,
                    database_bytes: from_sql("database_bytes", self.database_bytes)?,
                },
                measured_at: self.measured_at.to_jiff(),
            })
        }
    }

    /// The domains (and whether each is being deleted) of one account, from rows of many.
    fn of_account(rows: &[(i64, String, bool)], account: i64) -> Vec<(String, bool)> {
        rows.iter()
            .filter(|(id, ..)| *id == account)
            .map(|(_, domain, deleting)| (domain.clone(), *deleting))
            .collect()
    }

    #[async_trait::async_trait]
    impl FleetStore for SqlStore {
        async fn failovers_remaining(&self, server: ServerId) -> Result<i64> {
            Ok(sqlx::query_scalar(
                "SELECT COUNT(*) FROM account_migrations WHERE from_server = $1 AND failover \
                 AND state <> 'done'",
            )
            .bind(server.get())
            .fetch_one(&self.pool)
            .await?)
        }

        async fn migration(&self, account: AccountId) -> Result<Option<Migration>> {
            read_tx!(self, tx, { fetch_migration(tx, account).await })
        }

        async fn moves_under_way(&self, server: ServerId) -> Result<Vec<(DomainName, Migration)>> {
            #[derive(sqlx::FromRow)]
            struct Row {
                domain: String,
                #[sqlx(flatten)]
                migration: MigrationRow,
            }
            sqlx::query_as::<_, Row>(
                "SELECT a.domain, m.account_id, m.from_server, m.to_server, m.state, \
                 m.delete_after_ms, m.confirmed, m.failover, m.restore_from, m.without_content \
                 FROM account_migrations m JOIN accounts a ON a.id = m.account_id \
                 WHERE (m.from_server = $1 OR m.to_server = $1) AND m.state <> 'done' \
                 ORDER BY m.account_id",
            )
            .bind(server.get())
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|row| {
                let domain =
                    DomainName::parse(&row.domain).map_err(|e| corrupt("account domain", e))?;
                Ok((domain, row.migration.into_model()?))
            })
            .collect()
        }

        async fn server_expectations(&self, server: ServerId) -> Result<Vec<Expected>> {
            // The accounts, their mailboxes and their databases as of one moment.
            let (rows, mailboxes, databases, aliases, subservers) = read_tx!(self, tx, {
                let rows: Vec<(i64, String, String, String, String, String)> = sqlx::query_as(
                    "SELECT a.id, a.domain, a.desired_state, p.name, p.features, \
                     a.unix_username FROM accounts a \
                     JOIN services s ON s.id = a.service_id JOIN plans p ON p.id = s.plan_id \
                     WHERE a.server_id = $1 ORDER BY a.id",
                )
                .bind(server.get())
                .fetch_all(&mut **tx)
                .await?;
                let mailboxes: Vec<(i64, String, String, bool, Option<i64>, Option<i64>)> =
                    sqlx::query_as(
                        "SELECT m.account_id, m.name, m.real_name, m.deleting, m.quota_mb, \
                         p.mailbox_quota_mb FROM mailboxes m \
                         JOIN accounts a ON a.id = m.account_id \
                         JOIN services s ON s.id = a.service_id JOIN plans p ON p.id = s.plan_id \
                         WHERE a.server_id = $1",
                    )
                    .bind(server.get())
                    .fetch_all(&mut **tx)
                    .await?;
                let databases: Vec<(i64, String, String, bool)> = sqlx::query_as(
                    "SELECT d.account_id, d.name, d.type, d.deleting FROM databases d \
                     JOIN accounts a ON a.id = d.account_id WHERE a.server_id = $1",
                )
                .bind(server.get())
                .fetch_all(&mut **tx)
                .await?;
                let mut others = Vec::new();
                for table in ["aliases", "subservers"] {
                    let domains: Vec<(i64, String, bool)> =
                        sqlx::query_as(sqlx::AssertSqlSafe(format!(
                            "SELECT o.account_id, o.domain, o.deleting FROM {table} o \
                             JOIN accounts a ON a.id = o.account_id WHERE a.server_id = $1"
                        )))
                        .bind(server.get())
                        .fetch_all(&mut **tx)
                        .await?;
                    others.push(domains);
                }
                let subservers = others.pop().unwrap_or_default();
                let aliases = others.pop().unwrap_or_default();
                Ok((rows, mailboxes, databases, aliases, subservers))
            })?;
            rows.into_iter()
                .map(|(id, domain, state, plan, features, user)| {
                    let user = drover_core::UnixUsername::parse(&user)
                        .map_err(|e| corrupt("unix username", e))?;
                    let features: Vec<drover_core::Feature> =
                        crate::rows::json_list("plan features", &features)?;
                    let spec_features = drover_core::PlanSpec::server_features_of(&features);
                    Ok(Expected {
                        account: AccountId(id),
                        domain: DomainName::parse(&domain)
                            .map_err(|e| corrupt("account domain", e))?,
                        state: DesiredState::parse(&state)
                            .map_err(|e| corrupt("desired state", e))?,
                        plan,
                        features: spec_features,
                        mailboxes: mailboxes
                            .iter()
                            .filter(|(account, ..)| *account == id)
                            .map(|(_, name, real, deleting, own, plan)| {
                                let mb = |v: &Option<i64>| v.and_then(|v| u64::try_from(v).ok());
                                drover_core::ExpectedMailbox {
                                    name: name.clone(),
                                    real_name: real.clone(),
                                    quota_mb: drover_core::effective_mailbox_quota(
                                        mb(own),
                                        mb(plan),
                                    ),
                                    deleting: *deleting,
                                }
                            })
                            .collect(),
                        own_database: drover_core::DatabaseName::prefix(&user),
                        databases: databases
                            .iter()
                            .filter(|(account, ..)| *account == id)
                            .map(|(_, name, kind, deleting)| drover_core::ExpectedDatabase {
                                name: name.clone(),
                                kind: kind.clone(),
                                deleting: *deleting,
                            })
                            .collect(),
                        aliases: of_account(&aliases, id),
                        subservers: of_account(&subservers, id),
                    })
                })
                .collect()
        }

        async fn record_drift(
            &self,
            ctx: &RequestContext,
            server: ServerId,
            findings: &[DriftFinding],
        ) -> Result<Vec<DriftRecord>> {
            write_tx!(self, tx, {
                SqlStore::fetch_server(tx, server).await?;
                sqlx::query("DELETE FROM drift_findings WHERE server_id = $1")
                    .bind(server.get())
                    .execute(&mut **tx)
                    .await?;
                let now = sql_now();
                for finding in findings {
                    sqlx::query(
                        "INSERT INTO drift_findings (server_id, kind, domain, account_id, expected, \
                         found, found_at, resource) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(server.get())
                    .bind(finding.kind.as_str())
                    .bind(&finding.domain)
                    .bind(finding.account_id.map(AccountId::get))
                    .bind(&finding.expected)
                    .bind(&finding.found)
                    .bind(now)
                    .bind(&finding.resource)
                    .execute(&mut **tx)
                    .await?;
                }
                let mut counts = serde_json::Map::new();
                for kind in DriftKind::ALL {
                    let n = findings.iter().filter(|f| f.kind == kind).count();
                    counts.insert(kind.as_str().to_owned(), json!(n));
                }
                append_audit(
                    tx,
                    ctx,
                    "drift.scan",
                    format!("server:{server}"),
                    json!(counts),
                )
                .await?;
                if !findings.is_empty() {
                    let event = crate::NewEvent {
                        event_type: drover_core::EventType::DriftFound,
                        account: None,
                        subject: format!("server:{server}"),
                        data: json!({ "server_id": server, "findings": counts }),
                    };
                    append_event(tx, &self.queue, ctx, &event).await?;
                }
                fetch_drift(tx, Some(server)).await
            })
        }

        async fn drift_findings(&self, server: Option<ServerId>) -> Result<Vec<DriftRecord>> {
            read_tx!(self, tx, { fetch_drift(tx, server).await })
        }

        async fn adoption_known(&self) -> Result<drover_core::Known> {
            read_tx!(self, tx, {
                let plans: Vec<(i64, String, String, String)> = sqlx::query_as(
                    "SELECT id, name, features, required_tags FROM plans ORDER BY id",
                )
                .fetch_all(&mut **tx)
                .await?;
                let customers: Vec<(i64, Option<String>, Option<String>)> =
                    sqlx::query_as("SELECT id, email, external_ref FROM customers ORDER BY id")
                        .fetch_all(&mut **tx)
                        .await?;
                let accounts: Vec<(i64, String, String, Option<String>)> = sqlx::query_as(
                    "SELECT a.id, a.domain, a.unix_username, v.name FROM accounts a \
                     LEFT JOIN servers v ON v.id = a.server_id ORDER BY a.id",
                )
                .fetch_all(&mut **tx)
                .await?;
                let plans = plans
                    .into_iter()
                    .map(|(id, name, features, tags)| {
                        let features: Vec<drover_core::Feature> =
                            crate::rows::json_list("plan features", &features)?;
                        let required_tags: Vec<drover_core::Tag> =
                            crate::rows::json_list("plan tags", &tags)?;
                        Ok(drover_core::KnownPlan {
                            id: drover_core::PlanId(id),
                            name: drover_core::PlanName::parse(&name)
                                .map_err(|e| corrupt("plan name", e))?,
                            features: drover_core::PlanSpec::server_features_of(&features),
                            required_tags,
                        })
                    })
                    .collect::<Result<_>>()?;
                let accounts = accounts
                    .into_iter()
                    .map(|(id, domain, user, server)| {
                        Ok(drover_core::KnownAccount {
                            id: AccountId(id),
                            domain: DomainName::parse(&domain)
                                .map_err(|e| corrupt("account domain", e))?,
                            unix_username: drover_core::UnixUsername::parse(&user)
                                .map_err(|e| corrupt("unix username", e))?,
                            server,
                        })
                    })
                    .collect::<Result<_>>()?;
                Ok(drover_core::Known {
                    plans,
                    customers: customers
                        .into_iter()
                        .map(|(id, email, external_ref)| drover_core::KnownCustomer {
                            id: drover_core::CustomerId(id),
                            email,
                            external_ref,
                        })
                        .collect(),
                    accounts,
                })
            })
        }

        async fn record_usage(
            &self,
            server: ServerId,
            usage: &[(AccountId, Usage)],
        ) -> Result<usize> {
            write_tx!(self, tx, {
                let now = sql_now();
                let mut recorded = 0;
                for (account, u) in usage {
                    // Only while the account still lives on the server the figures came from.
                    let written = sqlx::query(
                        "INSERT INTO account_usage (account_id, server_id, disk_bytes, \
                         bandwidth_bytes, mailboxes, databases, database_bytes, measured_at) \
                         SELECT id, server_id, $3, $4, $5, $6, $7, $8 FROM accounts \
                         WHERE id = $1 AND server_id = $2 \
                         ON CONFLICT (account_id) DO UPDATE SET server_id = excluded.server_id, \
                         disk_bytes = excluded.disk_bytes, \
                         bandwidth_bytes = excluded.bandwidth_bytes, \
                         mailboxes = excluded.mailboxes, databases = excluded.databases, \
                         database_bytes = excluded.database_bytes, \
                         measured_at = excluded.measured_at",
                    )
                    .bind(account.get())
                    .bind(server.get())
                    .bind(u.disk_bytes.map(to_sql))
                    .bind(u.bandwidth_bytes.map(to_sql))
                    .bind(to_sql(u.mailboxes))
                    .bind(to_sql(u.databases))
                    .bind(to_sql(u.database_bytes))
                    .bind(now)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                    recorded += usize::from(written > 0);
                }
                // One event per sync of a server: billing reads the figures themselves from
                // /api/v1/usage (thousands of accounts would be thousands of events).
                if recorded > 0 {
                    let event = crate::NewEvent {
                        event_type: drover_core::EventType::UsageUpdated,
                        account: None,
                        subject: format!("server:{server}"),
                        data: json!({ "server_id": server, "accounts": recorded }),
                    };
                    let ctx = RequestContext {
                        actor: "drover".into(),
                        correlation_id: format!("usage-sync-server-{server}"),
                    };
                    append_event(tx, &self.queue, &ctx, &event).await?;
                }
                Ok(recorded)
            })
        }

        async fn usage(&self, filter: UsageFilter) -> Result<Vec<AccountUsage>> {
            sqlx::query_as::<_, UsageRow>(
                "SELECT u.account_id, a.service_id, a.domain, u.server_id, u.disk_bytes, \
                 u.bandwidth_bytes, u.mailboxes, u.databases, u.database_bytes, u.measured_at \
                 FROM account_usage u JOIN accounts a ON a.id = u.account_id \
                 WHERE u.account_id > $1 AND ($2 IS NULL OR u.server_id = $2) \
                 AND ($3 IS NULL OR a.service_id = $3) ORDER BY u.account_id LIMIT $4",
            )
            .bind(filter.page.after.unwrap_or(0))
            .bind(filter.server_id.map(ServerId::get))
            .bind(filter.service_id.map(ServiceId::get))
            .bind(i64::from(filter.page.limit))
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(UsageRow::into_model)
            .collect()
        }

        async fn server_health(&self, server: ServerId) -> Result<Option<ServerHealth>> {
            read_tx!(self, tx, { fetch_health(tx, server).await })
        }

        async fn record_health(
            &self,
            ctx: &RequestContext,
            server: ServerId,
            probe: &HealthProbe,
            policy: &HealthPolicy,
        ) -> Result<HealthChange> {
            write_tx!(self, tx, {
                let before = SqlStore::fetch_server(tx, server).await?;
                let streak = fetch_health(tx, server)
                    .await?
                    .map(|h| h.streak)
                    .unwrap_or_default();
                let (verdict, reasons) = probe.assess(policy);
                let (state, streak) = next_health(before.state, streak, verdict, policy);
                let probe_json = serde_json::to_string(probe).map_err(|e| corrupt("probe", e))?;
                sqlx::query(
                    "INSERT INTO server_health (server_id, failures, degraded, healthy, verdict, \
                     reasons, probe, checked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (server_id) DO UPDATE SET failures = excluded.failures, \
                     degraded = excluded.degraded, healthy = excluded.healthy, \
                     verdict = excluded.verdict, reasons = excluded.reasons, \
                     probe = excluded.probe, checked_at = excluded.checked_at",
                )
                .bind(server.get())
                .bind(i64::from(streak.failures))
                .bind(i64::from(streak.degraded))
                .bind(i64::from(streak.healthy))
                .bind(verdict_name(verdict))
                .bind(to_json_list(&reasons))
                .bind(probe_json)
                .bind(sql_now())
                .execute(&mut **tx)
                .await?;
                if state != before.state {
                    sqlx::query("UPDATE servers SET state = $2, updated_at = $3 WHERE id = $1")
                        .bind(server.get())
                        .bind(state.as_str())
                        .bind(sql_now())
                        .execute(&mut **tx)
                        .await?;
                    append_audit(
                        tx,
                        ctx,
                        "server.health",
                        format!("server:{server}"),
                        json!({
                            "from": before.state, "to": state, "reasons": reasons,
                            "latency_ms": probe.latency_ms,
                        }),
                    )
                    .await?;
                    let event = crate::NewEvent::server_state_changed(&before, state, &reasons);
                    append_event(tx, &self.queue, ctx, &event).await?;
                }
                let health = fetch_health(tx, server)
                    .await?
                    .ok_or_else(|| StoreError::not_found("server health", server))?;
                Ok(HealthChange {
                    server: SqlStore::fetch_server(tx, server).await?,
                    before: before.state,
                    health,
                })
            })
        }
    }
}
