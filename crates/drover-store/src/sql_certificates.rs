// The CertificateStore on one SQL backend, included after `sql_store.rs` by `postgres.rs` and
// `sqlite.rs` (it uses that file's transaction macros and helpers).

mod certificate_sql {
    use async_trait::async_trait;
    use drover_core::{AccountId, CertificateState, DomainName, ServerId};
    use jiff::Timestamp;
    use jiff_sqlx::Timestamp as SqlTimestamp;
    use serde_json::json;

    use super::{SqlStore, Tx, append_audit, begin, begin_read, insert_job};
    use crate::certificate_store::*;
    use crate::jobs::RequestCertificate;
    use crate::rows::{parse, sql_now};
    use crate::{Enqueued, RequestContext, Result, StoreError};

    const HOUR: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);

    const COLUMNS: &str = "c.account_id, a.domain, a.server_id, c.state, c.waiting_for, \
         c.last_error, c.failures, c.next_attempt_at, c.requested_at, c.issued_at, \
         c.expires_at, c.updated_at FROM certificates c JOIN accounts a ON a.id = c.account_id";

    #[derive(sqlx::FromRow)]
    struct CertificateRow {
        account_id: i64,
        domain: String,
        server_id: Option<i64>,
        state: String,
        waiting_for: Option<String>,
        last_error: Option<String>,
        failures: i32,
        next_attempt_at: Option<SqlTimestamp>,
        requested_at: SqlTimestamp,
        issued_at: Option<SqlTimestamp>,
        expires_at: Option<SqlTimestamp>,
        updated_at: SqlTimestamp,
    }

    #[derive(sqlx::FromRow)]
    struct NameRow {
        account_id: i64,
        domain: String,
        issued_at: Option<SqlTimestamp>,
        expires_at: Option<SqlTimestamp>,
        last_error: Option<String>,
    }

    impl NameRow {
        fn into_model(self) -> Result<CertificateName> {
            Ok(CertificateName {
                domain: parse("certificate name", &self.domain, DomainName::parse)?,
                issued_at: self.issued_at.map(|t| t.to_jiff()),
                expires_at: self.expires_at.map(|t| t.to_jiff()),
                last_error: self.last_error,
            })
        }
    }

    /// The names of the certificates of `accounts`: the account's own domain first, then the
    /// others by name.
    async fn names_of(tx: &mut Tx, certificates: &mut [Certificate]) -> Result<()> {
        if certificates.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = certificates
            .iter()
            .map(|c| c.account_id.get().to_string())
            .collect();
        let rows: Vec<NameRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT account_id, domain, issued_at, expires_at, last_error \
             FROM certificate_names WHERE account_id IN ({}) ORDER BY account_id, domain",
            ids.join(", ")
        )))
        .fetch_all(&mut **tx)
        .await?;
        for row in rows {
            let Some(certificate) = certificates
                .iter_mut()
                .find(|c| c.account_id.get() == row.account_id)
            else {
                continue;
            };
            let name = row.into_model()?;
            let own = name.domain == certificate.domain;
            certificate
                .names
                .insert(if own { 0 } else { certificate.names.len() }, name);
        }
        Ok(())
    }

    impl CertificateRow {
        fn into_model(self, recent_failures: Vec<Timestamp>) -> Result<Certificate> {
            Ok(Certificate {
                account_id: AccountId(self.account_id),
                domain: parse(
                    "certificate domain",
                    &self.domain,
                    drover_core::DomainName::parse,
                )?,
                server_id: self.server_id.map(ServerId),
                state: parse("certificate state", &self.state, CertificateState::parse)?,
                waiting_for: self.waiting_for,
                last_error: self.last_error,
                failures: u32::try_from(self.failures).unwrap_or(0),
                recent_failures,
                next_attempt_at: self.next_attempt_at.map(|t| t.to_jiff()),
                requested_at: self.requested_at.to_jiff(),
                issued_at: self.issued_at.map(|t| t.to_jiff()),
                expires_at: self.expires_at.map(|t| t.to_jiff()),
                updated_at: self.updated_at.to_jiff(),
                names: Vec::new(),
            })
        }
    }

    async fn fetch(tx: &mut Tx, account: AccountId) -> Result<Option<Certificate>> {
        let row: Option<CertificateRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} WHERE c.account_id = $1"
        )))
        .bind(account.get())
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut certificate = [row.into_model(recent_failures(tx, account).await?)?];
        names_of(tx, &mut certificate).await?;
        let [certificate] = certificate;
        Ok(Some(certificate))
    }

    async fn recent_failures(tx: &mut Tx, account: AccountId) -> Result<Vec<Timestamp>> {
        let failures: Vec<(SqlTimestamp,)> = sqlx::query_as(
            "SELECT failed_at FROM certificate_failures WHERE account_id = $1 AND failed_at > $2 \
             ORDER BY failed_at",
        )
        .bind(account.get())
        .bind(at(Timestamp::now() - HOUR))
        .fetch_all(&mut **tx)
        .await?;
        Ok(failures.into_iter().map(|(t,)| t.to_jiff()).collect())
    }

    async fn fetch_existing(tx: &mut Tx, account: AccountId) -> Result<Certificate> {
        fetch(tx, account)
            .await?
            .ok_or_else(|| StoreError::not_found("certificate of account", account))
    }

    /// Drops the account's certificate names that are not among `names`.
    async fn keep_only(tx: &mut Tx, account: AccountId, names: &[DomainName]) -> Result<()> {
        let held: Vec<(String,)> =
            sqlx::query_as("SELECT domain FROM certificate_names WHERE account_id = $1")
                .bind(account.get())
                .fetch_all(&mut **tx)
                .await?;
        for (domain,) in held {
            if !names.iter().any(|n| n.as_str() == domain) {
                sqlx::query("DELETE FROM certificate_names WHERE account_id = $1 AND domain = $2")
                    .bind(account.get())
                    .bind(domain)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Ok(())
    }

    fn at(t: Timestamp) -> SqlTimestamp {
        SqlTimestamp::from(t)
    }

    #[async_trait]
    impl CertificateStore for SqlStore {
        async fn certificate(&self, account: AccountId) -> Result<Option<Certificate>> {
            read_tx!(self, tx, { fetch(tx, account).await })
        }

        async fn certificates(&self, filter: CertificateFilter) -> Result<Vec<Certificate>> {
            read_tx!(self, tx, {
                let rows: Vec<CertificateRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} WHERE c.account_id > $1 \
                     AND ($2 IS NULL OR c.state = $2) AND ($3 IS NULL OR a.server_id = $3) \
                     AND ($4 IS NULL OR (c.state = 'issued' AND (c.expires_at < $4 \
                          OR EXISTS (SELECT 1 FROM certificate_names n \
                                     WHERE n.account_id = c.account_id \
                                     AND n.issued_at IS NOT NULL AND n.expires_at < $4)))) \
                     ORDER BY c.account_id LIMIT $5"
                )))
                .bind(filter.page.after.unwrap_or(0))
                .bind(filter.state.map(CertificateState::as_str))
                .bind(filter.server.map(ServerId::get))
                .bind(filter.expiring_before.map(at))
                .bind(i64::from(filter.page.limit))
                .fetch_all(&mut **tx)
                .await?;
                // Failures are only needed for one certificate's next turn, not for lists.
                let mut certificates = rows
                    .into_iter()
                    .map(|row| row.into_model(Vec::new()))
                    .collect::<Result<Vec<_>>>()?;
                names_of(tx, &mut certificates).await?;
                Ok(certificates)
            })
        }

        async fn certificate_failures(&self, account: AccountId) -> Result<Vec<Timestamp>> {
            read_tx!(self, tx, { recent_failures(tx, account).await })
        }

        async fn request_certificate(
            &self,
            ctx: &RequestContext,
            account: AccountId,
            names: &[DomainName],
            renew: &[DomainName],
        ) -> Result<(Certificate, Enqueued)> {
            write_tx!(self, tx, {
                let now = sql_now();
                // Asked again: a fresh request, whatever came before (failures stay counted).
                sqlx::query(
                    "INSERT INTO certificates (account_id, state, requested_at, updated_at) \
                     VALUES ($1, 'requested', $2, $2) ON CONFLICT (account_id) DO UPDATE SET \
                     state = 'requested', waiting_for = NULL, next_attempt_at = NULL, \
                     requested_at = $2, updated_at = $2",
                )
                .bind(account.get())
                .bind(now)
                .execute(&mut **tx)
                .await
                .map_err(|e| match e.as_database_error() {
                    Some(db) if db.is_foreign_key_violation() => {
                        StoreError::not_found("account", account)
                    }
                    _ => e.into(),
                })?;
                keep_only(tx, account, names).await?;
                for name in names {
                    sqlx::query(
                        "INSERT INTO certificate_names (account_id, domain) VALUES ($1, $2) \
                         ON CONFLICT (account_id, domain) DO NOTHING",
                    )
                    .bind(account.get())
                    .bind(name.as_str())
                    .execute(&mut **tx)
                    .await?;
                }
                for name in renew {
                    sqlx::query(
                        "UPDATE certificate_names SET issued_at = NULL \
                         WHERE account_id = $1 AND domain = $2",
                    )
                    .bind(account.get())
                    .bind(name.as_str())
                    .execute(&mut **tx)
                    .await?;
                }
                let args = RequestCertificate {
                    account_id: account.get(),
                };
                let opts = riverqueue::InsertOpts::default();
                let (id, joined) =
                    insert_job(&self.queue, tx, ctx, Some(account), args, opts).await?;
                append_audit(
                    tx,
                    ctx,
                    "certificate.requested",
                    format!("account:{account}"),
                    json!({ "job": id, "joined": joined, "names": names, "renew": renew }),
                )
                .await?;
                Ok((fetch_existing(tx, account).await?, Enqueued { id, joined }))
            })
        }

        async fn record_certificate(
            &self,
            ctx: &RequestContext,
            account: AccountId,
            asked_at: Timestamp,
            outcome: &CertificateOutcome,
        ) -> Result<Option<Certificate>> {
            write_tx!(self, tx, {
                let now = sql_now();
                let subject = format!("account:{account}");
                // Let's Encrypt counted it, whatever became of the request since.
                if let CertificateOutcome::Failed { message, .. } = outcome {
                    sqlx::query(
                        "INSERT INTO certificate_failures (account_id, failed_at) VALUES ($1, $2)",
                    )
                    .bind(account.get())
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
                    sqlx::query(
                        "DELETE FROM certificate_failures WHERE account_id = $1 AND failed_at <= $2",
                    )
                    .bind(account.get())
                    .bind(at(Timestamp::now() - HOUR))
                    .execute(&mut **tx)
                    .await?;
                    append_audit(
                        tx,
                        ctx,
                        "certificate.failed",
                        subject.clone(),
                        json!({ "message": message }),
                    )
                    .await?;
                }
                let asked = at(asked_at);
                let changed = match outcome {
                    CertificateOutcome::Waiting { why, until, .. } => sqlx::query(
                        "UPDATE certificates SET waiting_for = $3, next_attempt_at = $4, \
                         updated_at = $5 WHERE account_id = $1 AND requested_at = $2",
                    )
                    .bind(account.get())
                    .bind(asked)
                    .bind(why)
                    .bind(at(*until))
                    .bind(now)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected(),
                    CertificateOutcome::Issued { expires_at, .. } => {
                        append_audit(
                            tx,
                            ctx,
                            "certificate.issued",
                            subject,
                            json!({ "expires_at": expires_at.map(|t| t.to_string()) }),
                        )
                        .await?;
                        sqlx::query(
                            "UPDATE certificates SET state = 'issued', waiting_for = NULL, \
                             last_error = NULL, failures = 0, next_attempt_at = NULL, \
                             issued_at = $3, expires_at = COALESCE($4, expires_at), \
                             updated_at = $3 \
                             WHERE account_id = $1 AND requested_at = $2",
                        )
                        .bind(account.get())
                        .bind(asked)
                        .bind(now)
                        .bind(expires_at.map(at))
                        .execute(&mut **tx)
                        .await?
                        .rows_affected()
                    }
                    CertificateOutcome::Failed {
                        message,
                        next_attempt_at,
                        ..
                    } => sqlx::query(
                        "UPDATE certificates SET state = 'failed', waiting_for = NULL, \
                         last_error = $3, failures = failures + 1, next_attempt_at = $4, \
                         updated_at = $5 WHERE account_id = $1 AND requested_at = $2",
                    )
                    .bind(account.get())
                    .bind(asked)
                    .bind(message)
                    .bind(at(*next_attempt_at))
                    .bind(now)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected(),
                };
                if changed == 0 {
                    return Ok(None);
                }
                // Each name's answer, for the request the turn began from: one asked again
                // meanwhile is asked by the next turn (a name renewed must not read as issued).
                for NameAnswer { domain, answer } in outcome.answers() {
                    let query = match answer {
                        Ok(expires_at) => sqlx::query(
                            "UPDATE certificate_names SET issued_at = $3, expires_at = $4, \
                             last_error = NULL WHERE account_id = $1 AND domain = $2",
                        )
                        .bind(account.get())
                        .bind(domain.as_str())
                        .bind(now)
                        .bind(expires_at.map(at)),
                        Err(message) => sqlx::query(
                            "UPDATE certificate_names SET last_error = $3 \
                             WHERE account_id = $1 AND domain = $2",
                        )
                        .bind(account.get())
                        .bind(domain.as_str())
                        .bind(message),
                    };
                    query.execute(&mut **tx).await?;
                }
                fetch(tx, account).await
            })
        }

        async fn record_certificate_expiries(
            &self,
            expiries: &[(AccountId, DomainName, Timestamp)],
        ) -> Result<usize> {
            write_tx!(self, tx, {
                let mut changed = 0;
                for (account, domain, expires_at) in expiries {
                    changed += sqlx::query(
                        "UPDATE certificates SET expires_at = $2, updated_at = $3 \
                         WHERE account_id = $1 AND state = 'issued' \
                         AND (expires_at IS NULL OR expires_at <> $2) \
                         AND $4 = (SELECT domain FROM accounts WHERE id = $1)",
                    )
                    .bind(account.get())
                    .bind(at(*expires_at))
                    .bind(sql_now())
                    .bind(domain.as_str())
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                    sqlx::query(
                        "UPDATE certificate_names SET expires_at = $3 WHERE account_id = $1 \
                         AND domain = $2 AND issued_at IS NOT NULL",
                    )
                    .bind(account.get())
                    .bind(domain.as_str())
                    .bind(at(*expires_at))
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(usize::try_from(changed).unwrap_or(usize::MAX))
            })
        }

        async fn keep_certificate_names(
            &self,
            account: AccountId,
            names: &[DomainName],
        ) -> Result<()> {
            write_tx!(self, tx, { keep_only(tx, account, names).await })
        }

        async fn forget_certificate(
            &self,
            ctx: &RequestContext,
            account: AccountId,
        ) -> Result<bool> {
            write_tx!(self, tx, {
                sqlx::query("DELETE FROM certificate_names WHERE account_id = $1")
                    .bind(account.get())
                    .execute(&mut **tx)
                    .await?;
                let gone = sqlx::query("DELETE FROM certificates WHERE account_id = $1")
                    .bind(account.get())
                    .execute(&mut **tx)
                    .await?
                    .rows_affected()
                    > 0;
                if gone {
                    append_audit(
                        tx,
                        ctx,
                        "certificate.forgotten",
                        format!("account:{account}"),
                        json!({}),
                    )
                    .await?;
                }
                Ok(gone)
            })
        }
    }
}
