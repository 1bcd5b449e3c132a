// The WebhookStore on one SQL backend, included after `sql_store.rs` by `postgres.rs` and
// `sqlite.rs` (it uses that file's transaction macros and helpers).

mod webhook_sql {
    use async_trait::async_trait;
    use drover_core::{AccountId, DeliveryId, EventId, EventType, WebhookEndpointId};
    use jiff::Timestamp;
    use jiff_sqlx::Timestamp as SqlTimestamp;
    use serde_json::json;

    use super::{
        FOR_UPDATE, SqlStore, Tx, append_audit, append_event, begin, begin_read, insert_job,
        webhook_job_opts,
    };
    use crate::rows::{corrupt, json_list, sql_now, to_json_list};
    use crate::webhook_store::*;
    use crate::{Page, RequestContext, Result, StoreError};

    const ENDPOINT_COLUMNS: &str = "id, url, event_types, paused, paused_reason, failing_since, \
         previous_valid_until, created_at, updated_at FROM webhook_endpoints";

    #[derive(sqlx::FromRow)]
    struct EndpointRow {
        id: i64,
        url: String,
        event_types: String,
        paused: bool,
        paused_reason: Option<String>,
        failing_since: Option<SqlTimestamp>,
        previous_valid_until: Option<SqlTimestamp>,
        created_at: SqlTimestamp,
        updated_at: SqlTimestamp,
    }

    impl EndpointRow {
        fn into_model(self) -> Result<WebhookEndpoint> {
            let now = Timestamp::now();
            Ok(WebhookEndpoint {
                id: WebhookEndpointId(self.id),
                url: self.url,
                event_types: json_list("webhook event types", &self.event_types)?,
                paused: self.paused,
                paused_reason: self.paused_reason,
                failing_since: self.failing_since.map(|t| t.to_jiff()),
                previous_secret_valid_until: self
                    .previous_valid_until
                    .map(|t| t.to_jiff())
                    .filter(|t| *t > now),
                created_at: self.created_at.to_jiff(),
                updated_at: self.updated_at.to_jiff(),
            })
        }
    }

    const DELIVERY_COLUMNS: &str = "d.id, d.endpoint_id, d.event_id, e.event_type, e.account_id, \
         d.delivered, d.attempts, d.failures, d.last_status, d.last_error, d.last_duration_ms, \
         d.last_response, d.last_attempt_at, d.delivered_at, e.created_at \
         FROM webhook_deliveries d JOIN events e ON e.id = d.event_id";

    #[derive(sqlx::FromRow)]
    struct DeliveryRow {
        id: i64,
        endpoint_id: i64,
        event_id: i64,
        event_type: String,
        account_id: Option<i64>,
        delivered: bool,
        attempts: i32,
        failures: i32,
        last_status: Option<i32>,
        last_error: Option<String>,
        last_duration_ms: Option<i64>,
        last_response: Option<String>,
        last_attempt_at: Option<SqlTimestamp>,
        delivered_at: Option<SqlTimestamp>,
        created_at: SqlTimestamp,
    }

    impl DeliveryRow {
        fn into_model(self) -> Delivery {
            Delivery {
                id: DeliveryId(self.id),
                endpoint_id: WebhookEndpointId(self.endpoint_id),
                event_id: EventId(self.event_id),
                event_type: self.event_type,
                account_id: self.account_id.map(AccountId),
                delivered: self.delivered,
                attempts: u32::try_from(self.attempts).unwrap_or(0),
                failures: u32::try_from(self.failures).unwrap_or(0),
                last_status: self.last_status.and_then(|s| u16::try_from(s).ok()),
                last_error: self.last_error,
                last_duration_ms: self.last_duration_ms.and_then(|d| u64::try_from(d).ok()),
                last_response: self.last_response,
                last_attempt_at: self.last_attempt_at.map(|t| t.to_jiff()),
                delivered_at: self.delivered_at.map(|t| t.to_jiff()),
                created_at: self.created_at.to_jiff(),
            }
        }
    }

    fn type_names(types: &[EventType]) -> String {
        let names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
        to_json_list(&names)
    }

    /// The endpoint, locked on PostgreSQL.
    async fn locked_endpoint(tx: &mut Tx, id: WebhookEndpointId) -> Result<WebhookEndpoint> {
        sqlx::query_as::<_, EndpointRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} WHERE id = $1{FOR_UPDATE}"
        )))
        .bind(id.get())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::not_found("webhook endpoint", id))?
        .into_model()
    }

    async fn touch(tx: &mut Tx, id: WebhookEndpointId) -> Result<()> {
        sqlx::query("UPDATE webhook_endpoints SET updated_at = $1 WHERE id = $2")
            .bind(sql_now())
            .bind(id.get())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    #[async_trait]
    impl WebhookStore for SqlStore {
        async fn create_webhook_endpoint(
            &self,
            ctx: &RequestContext,
            new: &NewWebhookEndpoint,
        ) -> Result<WebhookEndpoint> {
            write_tx!(self, tx, {
                super::sealed_with_the_recorded_key(tx, &new.key_id).await?;
                let now = sql_now();
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO webhook_endpoints (url, event_types, sealed_secret, \
                     seal_key_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) \
                     RETURNING id",
                )
                .bind(new.url.as_str())
                .bind(type_names(&new.event_types))
                .bind(&new.sealed_secret)
                .bind(&new.key_id)
                .bind(now)
                .fetch_one(&mut **tx)
                .await?;
                let id = WebhookEndpointId(id);
                append_audit(
                    tx,
                    ctx,
                    "webhook.create",
                    format!("webhook:{id}"),
                    json!({ "url": new.url.as_str(), "event_types": type_names(&new.event_types) }),
                )
                .await?;
                locked_endpoint(tx, id).await
            })
        }

        async fn webhook_endpoint(&self, id: WebhookEndpointId) -> Result<WebhookEndpoint> {
            sqlx::query_as::<_, EndpointRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {ENDPOINT_COLUMNS} WHERE id = $1"
            )))
            .bind(id.get())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::not_found("webhook endpoint", id))?
            .into_model()
        }

        async fn webhook_endpoints(&self, page: Page) -> Result<Vec<WebhookEndpoint>> {
            sqlx::query_as::<_, EndpointRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {ENDPOINT_COLUMNS} WHERE id > $1 ORDER BY id LIMIT $2"
            )))
            .bind(page.after.unwrap_or(0))
            .bind(i64::from(page.limit))
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(EndpointRow::into_model)
            .collect()
        }

        async fn update_webhook_endpoint(
            &self,
            ctx: &RequestContext,
            id: WebhookEndpointId,
            patch: &WebhookEndpointPatch,
        ) -> Result<WebhookEndpoint> {
            write_tx!(self, tx, {
                // The audit chain first, then the endpoint: the order every writer locks in.
                append_audit(
                    tx,
                    ctx,
                    "webhook.update",
                    format!("webhook:{id}"),
                    json!({
                        "url": patch.url.as_ref().map(|u| u.as_str()),
                        "event_types": patch.event_types.as_deref().map(type_names),
                        "paused": patch.paused,
                    }),
                )
                .await?;
                let before = locked_endpoint(tx, id).await?;
                if let Some(url) = &patch.url {
                    sqlx::query("UPDATE webhook_endpoints SET url = $1 WHERE id = $2")
                        .bind(url.as_str())
                        .bind(id.get())
                        .execute(&mut **tx)
                        .await?;
                }
                if let Some(types) = &patch.event_types {
                    sqlx::query("UPDATE webhook_endpoints SET event_types = $1 WHERE id = $2")
                        .bind(type_names(types))
                        .bind(id.get())
                        .execute(&mut **tx)
                        .await?;
                }
                match patch.paused {
                    Some(true) if !before.paused => {
                        sqlx::query(
                            "UPDATE webhook_endpoints SET paused = TRUE, \
                             paused_reason = 'paused by an operator' WHERE id = $1",
                        )
                        .bind(id.get())
                        .execute(&mut **tx)
                        .await?;
                    }
                    Some(false) if before.paused => {
                        // The count moves: a job ending as it is resumed looks again.
                        sqlx::query(
                            "UPDATE webhook_endpoints SET paused = FALSE, paused_reason = NULL, \
                             failing_since = NULL, wanted = wanted + 1 WHERE id = $1",
                        )
                        .bind(id.get())
                        .execute(&mut **tx)
                        .await?;
                        let args = crate::jobs::DeliverWebhooks {
                            endpoint_id: id.get(),
                        };
                        insert_job(&self.queue, tx, ctx, None, args, webhook_job_opts()).await?;
                    }
                    _ => {}
                }
                touch(tx, id).await?;
                locked_endpoint(tx, id).await
            })
        }

        async fn rotate_webhook_secret(
            &self,
            ctx: &RequestContext,
            id: WebhookEndpointId,
            sealed_secret: &[u8],
            key_id: &str,
            previous_valid_until: Timestamp,
        ) -> Result<WebhookEndpoint> {
            write_tx!(self, tx, {
                super::sealed_with_the_recorded_key(tx, key_id).await?;
                append_audit(
                    tx,
                    ctx,
                    "webhook.rotate_secret",
                    format!("webhook:{id}"),
                    json!({ "previous_valid_until": previous_valid_until.to_string() }),
                )
                .await?;
                locked_endpoint(tx, id).await?;
                sqlx::query(
                    "UPDATE webhook_endpoints SET previous_sealed_secret = sealed_secret, \
                     previous_valid_until = $1, sealed_secret = $2, seal_key_id = $3 \
                     WHERE id = $4",
                )
                .bind(SqlTimestamp::from(previous_valid_until))
                .bind(sealed_secret)
                .bind(key_id)
                .bind(id.get())
                .execute(&mut **tx)
                .await?;
                touch(tx, id).await?;
                locked_endpoint(tx, id).await
            })
        }

        async fn delete_webhook_endpoint(
            &self,
            ctx: &RequestContext,
            id: WebhookEndpointId,
        ) -> Result<()> {
            write_tx!(self, tx, {
                let url: Option<String> =
                    sqlx::query_scalar("SELECT url FROM webhook_endpoints WHERE id = $1")
                        .bind(id.get())
                        .fetch_optional(&mut **tx)
                        .await?;
                let url = url.ok_or_else(|| StoreError::not_found("webhook endpoint", id))?;
                append_audit(
                    tx,
                    ctx,
                    "webhook.delete",
                    format!("webhook:{id}"),
                    json!({ "url": url }),
                )
                .await?;
                sqlx::query("DELETE FROM webhook_deliveries WHERE endpoint_id = $1")
                    .bind(id.get())
                    .execute(&mut **tx)
                    .await?;
                sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
                    .bind(id.get())
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            })
        }

        async fn webhook_secrets(&self, id: WebhookEndpointId) -> Result<SealedWebhookSecrets> {
            let row: Option<(Vec<u8>, Option<Vec<u8>>, Option<SqlTimestamp>)> = sqlx::query_as(
                "SELECT sealed_secret, previous_sealed_secret, previous_valid_until \
                 FROM webhook_endpoints WHERE id = $1",
            )
            .bind(id.get())
            .fetch_optional(&self.pool)
            .await?;
            let (current, previous, until) =
                row.ok_or_else(|| StoreError::not_found("webhook endpoint", id))?;
            let now = Timestamp::now();
            Ok(SealedWebhookSecrets {
                current,
                previous: previous.filter(|_| until.is_some_and(|u| u.to_jiff() > now)),
            })
        }

        async fn record_event(
            &self,
            ctx: &RequestContext,
            event: &NewEvent,
        ) -> Result<Option<EventId>> {
            write_tx!(self, tx, {
                append_event(tx, &self.queue, ctx, event).await
            })
        }

        async fn webhook_deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>> {
            let mut sql = format!("SELECT {DELIVERY_COLUMNS} WHERE d.id > $1");
            if filter.endpoint.is_some() {
                sql.push_str(" AND d.endpoint_id = $3");
            }
            if filter.failed {
                sql.push_str(" AND d.failures > 0 AND NOT d.delivered");
            }
            sql.push_str(" ORDER BY d.id LIMIT $2");
            let mut query = sqlx::query_as::<_, DeliveryRow>(sqlx::AssertSqlSafe(sql))
                .bind(filter.page.after.unwrap_or(0))
                .bind(i64::from(filter.page.limit));
            if let Some(endpoint) = filter.endpoint {
                query = query.bind(endpoint.get());
            }
            Ok(query
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(DeliveryRow::into_model)
                .collect())
        }

        async fn webhook_backlog(
            &self,
            endpoint: WebhookEndpointId,
            limit: u32,
        ) -> Result<Option<WebhookBacklog>> {
            read_tx!(self, tx, {
                let found: Option<(i64, bool, String)> = sqlx::query_as(
                    "SELECT wanted, paused, url FROM webhook_endpoints WHERE id = $1",
                )
                .bind(endpoint.get())
                .fetch_optional(&mut **tx)
                .await?;
                let Some((seen, paused, url)) = found else {
                    return Ok(None);
                };
                #[derive(sqlx::FromRow)]
                struct PendingRow {
                    id: i64,
                    event_id: i64,
                    event_type: String,
                    account_id: Option<i64>,
                    data: String,
                    created_at: SqlTimestamp,
                    failures: i32,
                }
                let rows: Vec<PendingRow> = sqlx::query_as(
                    "SELECT d.id, e.id AS event_id, e.event_type, e.account_id, e.data, \
                     e.created_at, d.failures FROM webhook_deliveries d \
                     JOIN events e ON e.id = d.event_id \
                     WHERE d.endpoint_id = $1 AND NOT d.delivered ORDER BY d.event_id LIMIT $2",
                )
                .bind(endpoint.get())
                .bind(i64::from(limit))
                .fetch_all(&mut **tx)
                .await?;
                let deliveries = rows
                    .into_iter()
                    .map(|row| {
                        Ok(PendingDelivery {
                            id: DeliveryId(row.id),
                            event_id: EventId(row.event_id),
                            event_type: row.event_type,
                            account_id: row.account_id.map(AccountId),
                            data: serde_json::from_str(&row.data)
                                .map_err(|e| corrupt("event data", e))?,
                            created_at: row.created_at.to_jiff(),
                            failures: u32::try_from(row.failures).unwrap_or(0),
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Some(WebhookBacklog {
                    seen,
                    paused,
                    url,
                    deliveries,
                }))
            })
        }

        async fn record_webhook_attempt(
            &self,
            endpoint: WebhookEndpointId,
            delivery: DeliveryId,
            attempt: &DeliveryAttempt,
        ) -> Result<Option<Timestamp>> {
            write_tx!(self, tx, {
                let now = sql_now();
                sqlx::query(
                    "UPDATE webhook_deliveries SET attempts = attempts + 1, \
                     failures = failures + $1, delivered = $2, last_status = $3, \
                     last_error = $4, last_duration_ms = $5, last_response = $6, \
                     last_attempt_at = $7, delivered_at = CASE WHEN $2 THEN $7 ELSE NULL END \
                     WHERE id = $8",
                )
                .bind(i32::from(!attempt.delivered))
                .bind(attempt.delivered)
                .bind(attempt.status.map(i32::from))
                .bind(&attempt.error)
                .bind(i64::try_from(attempt.duration_ms).unwrap_or(i64::MAX))
                .bind(&attempt.response)
                .bind(now)
                .bind(delivery.get())
                .execute(&mut **tx)
                .await?;
                let since: Option<SqlTimestamp> = if attempt.delivered {
                    sqlx::query("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1")
                        .bind(endpoint.get())
                        .execute(&mut **tx)
                        .await?;
                    None
                } else {
                    sqlx::query_scalar(
                        "UPDATE webhook_endpoints SET failing_since = \
                         COALESCE(failing_since, $1) WHERE id = $2 RETURNING failing_since",
                    )
                    .bind(now)
                    .bind(endpoint.get())
                    .fetch_optional(&mut **tx)
                    .await?
                    .flatten()
                };
                Ok(since.map(|t| t.to_jiff()))
            })
        }

        async fn pause_webhook_endpoint(
            &self,
            ctx: &RequestContext,
            id: WebhookEndpointId,
            reason: &str,
        ) -> Result<()> {
            write_tx!(self, tx, {
                append_audit(
                    tx,
                    ctx,
                    "webhook.paused",
                    format!("webhook:{id}"),
                    json!({ "reason": reason }),
                )
                .await?;
                locked_endpoint(tx, id).await?;
                sqlx::query(
                    "UPDATE webhook_endpoints SET paused = TRUE, paused_reason = $1 WHERE id = $2",
                )
                .bind(reason)
                .bind(id.get())
                .execute(&mut **tx)
                .await?;
                touch(tx, id).await
            })
        }

        async fn end_webhook_job(
            &self,
            endpoint: WebhookEndpointId,
            seen: i64,
            context: &riverqueue::WorkContext,
        ) -> Result<bool> {
            write_tx!(self, tx, {
                let wanted: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT wanted FROM webhook_endpoints WHERE id = $1{FOR_UPDATE}"
                )))
                .bind(endpoint.get())
                .fetch_optional(&mut **tx)
                .await?;
                // A deleted endpoint has nothing left to send.
                if wanted.is_some_and(|w| w != seen) {
                    return Ok(false);
                }
                context.job_complete_tx(&mut *tx).await?;
                Ok(true)
            })
        }

        async fn redeliver_webhooks(
            &self,
            ctx: &RequestContext,
            endpoint: WebhookEndpointId,
            delivery: Option<DeliveryId>,
            failed_since: Option<Timestamp>,
        ) -> Result<u64> {
            let (count, job) = write_tx!(self, tx, {
                let paused: Option<bool> =
                    sqlx::query_scalar("SELECT paused FROM webhook_endpoints WHERE id = $1")
                        .bind(endpoint.get())
                        .fetch_optional(&mut **tx)
                        .await?;
                match paused {
                    None => return Err(StoreError::not_found("webhook endpoint", endpoint)),
                    Some(true) => {
                        return Err(StoreError::conflict(
                            crate::Conflict::Paused,
                            format!(
                                "webhook endpoint {endpoint} is paused: resume it \
                                 ({{\"paused\": false}}), which sends what waits"
                            ),
                        ));
                    }
                    Some(false) => {}
                }
                append_audit(
                    tx,
                    ctx,
                    "webhook.redeliver",
                    format!("webhook:{endpoint}"),
                    json!({
                        "delivery": delivery,
                        "failed_since": failed_since.map(|t| t.to_string()),
                    }),
                )
                .await?;
                // Locked after the audit chain, as every writer does; the count moves, so a
                // job ending now looks again.
                sqlx::query("UPDATE webhook_endpoints SET wanted = wanted + 1 WHERE id = $1")
                    .bind(endpoint.get())
                    .execute(&mut **tx)
                    .await?;
                let count = match delivery {
                    Some(delivery) => {
                        let changed = sqlx::query(
                            "UPDATE webhook_deliveries SET delivered = FALSE, delivered_at = NULL \
                             WHERE id = $1 AND endpoint_id = $2",
                        )
                        .bind(delivery.get())
                        .bind(endpoint.get())
                        .execute(&mut **tx)
                        .await?
                        .rows_affected();
                        if changed == 0 {
                            return Err(StoreError::not_found(
                                "delivery",
                                format!("{delivery} of webhook endpoint {endpoint}"),
                            ));
                        }
                        changed
                    }
                    // Those waiting are sent by the job, now: counted here.
                    None => sqlx::query_scalar::<_, i64>(
                        "SELECT COUNT(*) FROM webhook_deliveries WHERE endpoint_id = $1 \
                         AND NOT delivered AND failures > 0 AND last_attempt_at >= $2",
                    )
                    .bind(endpoint.get())
                    .bind(SqlTimestamp::from(
                        failed_since.unwrap_or(Timestamp::UNIX_EPOCH),
                    ))
                    .fetch_one(&mut **tx)
                    .await?
                    .try_into()
                    .unwrap_or(0),
                };
                let args = crate::jobs::DeliverWebhooks {
                    endpoint_id: endpoint.get(),
                };
                let job = insert_job(&self.queue, tx, ctx, None, args, webhook_job_opts()).await?;
                Ok((count, job))
            })?;
            // The endpoint's job may be waiting out a failing receiver: it tries now.
            if let (id, true) = job {
                let _ = self.queue.jobs().retry(id.get()).await;
            }
            Ok(count)
        }
    }
}
