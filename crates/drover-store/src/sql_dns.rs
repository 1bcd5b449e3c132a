// The DnsStore on one SQL backend, included after `sql_store.rs` by `postgres.rs` and
// `sqlite.rs` (it uses that file's transaction macros and helpers).

mod dns_sql {
    use std::collections::{BTreeMap, BTreeSet};

    use drover_core::{
        AccountId, AddressMove, CredentialRef, DnsProviderId, DomainName, OwnerName, RecordIds,
        RecordKey, RecordType, RrSet, ZoneDiff, ZoneId, rewrite_addresses,
    };
    use jiff_sqlx::Timestamp as SqlTimestamp;
    use serde_json::json;

    use super::{SqlStore, Tx, append_audit, begin, begin_read};
    use crate::dns_store::*;
    use crate::rows::{corrupt, sql_now, to_json_list};
    use crate::{RequestContext, Result, StoreError};
    use drover_dns::ProviderSettings;

    #[derive(sqlx::FromRow)]
    struct ProviderRow {
        id: i64,
        name: String,
        credentials: String,
        serves_new_zones: bool,
        settings: String,
        created_at: SqlTimestamp,
    }

    impl ProviderRow {
        fn into_model(self) -> Result<DnsProviderRecord> {
            Ok(DnsProviderRecord {
                id: DnsProviderId(self.id),
                spec: DnsProviderSpec {
                    name: self.name,
                    credentials: CredentialRef::parse(&self.credentials)
                        .map_err(|e| corrupt("provider credentials", e))?,
                    serves_new_zones: self.serves_new_zones,
                    settings: provider_settings(&self.settings)?,
                },
                created_at: self.created_at.to_jiff(),
            })
        }
    }

    macro_rules! select_provider {
        () => {
            "SELECT id, name, credentials, serves_new_zones, settings, created_at FROM dns_providers"
        };
    }

    fn provider_settings(json: &str) -> Result<ProviderSettings> {
        serde_json::from_str(json).map_err(|e| corrupt("provider settings", e))
    }

    #[derive(sqlx::FromRow)]
    struct ZoneRow {
        id: i64,
        name: String,
        account_id: Option<i64>,
        generation: i64,
        max_change_percent: Option<i64>,
        deleting: bool,
    }

    #[derive(sqlx::FromRow)]
    struct RrSetRow {
        zone_id: i64,
        name: String,
        rtype: String,
        ttl: i64,
        records: String,
    }

    #[derive(sqlx::FromRow)]
    struct ZoneProviderRow {
        zone_id: i64,
        provider_id: i64,
        name: String,
        settings: String,
        provider_zone_id: Option<String>,
        synced_generation: i64,
        last_error: Option<String>,
        last_sync_at: Option<SqlTimestamp>,
    }

    fn rrset_from_row(zone: &DomainName, row: RrSetRow) -> Result<RrSet> {
        let what = format!("rrset {} {} of {zone}", row.name, row.rtype);
        let name =
            OwnerName::parse(&format!("{}.", row.name), zone).map_err(|e| corrupt(&what, e))?;
        let rtype = RecordType::parse(&row.rtype).map_err(|e| corrupt(&what, e))?;
        let ttl = u32::try_from(row.ttl).map_err(|e| corrupt(&what, e))?;
        let records: Vec<String> =
            serde_json::from_str(&row.records).map_err(|e| corrupt(&what, e))?;
        RrSet::new(name, rtype, ttl, records.iter().map(String::as_str))
            .map_err(|e| corrupt(&what, e))
    }

    /// `($1, $2, …)` for `n` values starting at `$first`: only numbered placeholders, so the
    /// SQL built with it stays safe.
    fn placeholders(first: usize, n: usize) -> String {
        let list: Vec<String> = (first..first + n).map(|i| format!("${i}")).collect();
        format!("({})", list.join(", "))
    }

    /// Loads zones with their rrsets and providers, in the order of `ids`.
    async fn load_zones(tx: &mut Tx, ids: &[i64]) -> Result<Vec<Zone>> {
        let mut zones = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let list = placeholders(1, chunk.len());
            let mut zone_rows = sqlx::query_as::<_, ZoneRow>(sqlx::AssertSqlSafe(format!(
                "SELECT id, name, account_id, generation, max_change_percent, deleting \
                 FROM dns_zones WHERE id IN {list}"
            )));
            let mut rrset_rows = sqlx::query_as::<_, RrSetRow>(sqlx::AssertSqlSafe(format!(
                "SELECT zone_id, name, rtype, ttl, records FROM dns_rrsets WHERE zone_id IN {list} \
                 ORDER BY zone_id, name, rtype"
            )));
            let mut provider_rows =
                sqlx::query_as::<_, ZoneProviderRow>(sqlx::AssertSqlSafe(format!(
                    "SELECT zp.zone_id, zp.provider_id, p.name, p.settings, zp.provider_zone_id, \
                 zp.synced_generation, zp.last_error, zp.last_sync_at \
                 FROM dns_zone_providers zp JOIN dns_providers p ON p.id = zp.provider_id \
                 WHERE zp.zone_id IN {list} ORDER BY zp.zone_id, zp.provider_id"
                )));
            for id in chunk {
                zone_rows = zone_rows.bind(*id);
                rrset_rows = rrset_rows.bind(*id);
                provider_rows = provider_rows.bind(*id);
            }
            let zone_rows = zone_rows.fetch_all(&mut **tx).await?;
            let mut rrsets: BTreeMap<i64, Vec<RrSetRow>> = BTreeMap::new();
            for row in rrset_rows.fetch_all(&mut **tx).await? {
                rrsets.entry(row.zone_id).or_default().push(row);
            }
            let mut providers: BTreeMap<i64, Vec<ZoneProvider>> = BTreeMap::new();
            for row in provider_rows.fetch_all(&mut **tx).await? {
                providers
                    .entry(row.zone_id)
                    .or_default()
                    .push(ZoneProvider {
                        provider_id: DnsProviderId(row.provider_id),
                        provider_name: row.name,
                        kind: provider_settings(&row.settings)?.kind(),
                        provider_zone_id: row.provider_zone_id,
                        synced_generation: row.synced_generation,
                        last_error: row.last_error,
                        last_sync_at: row.last_sync_at.map(|t| t.to_jiff()),
                    });
            }
            let mut by_id = BTreeMap::new();
            for row in zone_rows {
                let name = DomainName::parse(&row.name).map_err(|e| corrupt("zone name", e))?;
                let sets = rrsets
                    .remove(&row.id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| rrset_from_row(&name, r))
                    .collect::<Result<Vec<_>>>()?;
                by_id.insert(
                    row.id,
                    Zone {
                        id: ZoneId(row.id),
                        name,
                        account_id: row.account_id.map(AccountId),
                        generation: row.generation,
                        max_change_percent: row
                            .max_change_percent
                            .map(|p| u8::try_from(p).map_err(|e| corrupt("max_change_percent", e)))
                            .transpose()?,
                        deleting: row.deleting,
                        rrsets: sets,
                        providers: providers.remove(&row.id).unwrap_or_default(),
                    },
                );
            }
            zones.extend(chunk.iter().filter_map(|id| by_id.remove(id)));
        }
        Ok(zones)
    }

    pub(super) async fn fetch_provider(
        tx: &mut Tx,
        id: DnsProviderId,
    ) -> Result<DnsProviderRecord> {
        sqlx::query_as::<_, ProviderRow>(concat!(select_provider!(), " WHERE id = $1"))
            .bind(id.get())
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::not_found("DNS provider", id))?
            .into_model()
    }

    pub(super) async fn fetch_zone(tx: &mut Tx, id: ZoneId) -> Result<Zone> {
        load_zones(tx, &[id.get()])
            .await?
            .pop()
            .ok_or_else(|| StoreError::not_found("zone", id))
    }

    pub(super) async fn save_rrset(tx: &mut Tx, zone: ZoneId, rrset: &RrSet) -> Result<()> {
        sqlx::query(
            "INSERT INTO dns_rrsets (zone_id, name, rtype, ttl, records) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (zone_id, name, rtype) DO UPDATE SET ttl = excluded.ttl, records = excluded.records",
        )
        .bind(zone.get())
        .bind(rrset.name.as_str())
        .bind(rrset.rtype.as_str())
        .bind(i64::from(rrset.ttl))
        .bind(to_json_list(&rrset.records))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub(super) async fn drop_rrset(
        tx: &mut Tx,
        zone: ZoneId,
        name: &OwnerName,
        rtype: RecordType,
    ) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM dns_rrsets WHERE zone_id = $1 AND name = $2 AND rtype = $3")
                .bind(zone.get())
                .bind(name.as_str())
                .bind(rtype.as_str())
                .execute(&mut **tx)
                .await?
                .rows_affected(),
        )
    }

    pub(super) async fn bump_generation(tx: &mut Tx, zone: ZoneId) -> Result<()> {
        sqlx::query(
            "UPDATE dns_zones SET generation = generation + 1, updated_at = $2 WHERE id = $1",
        )
        .bind(zone.get())
        .bind(sql_now())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    #[async_trait::async_trait]
    impl DnsStore for SqlStore {
        async fn dns_providers(&self) -> Result<Vec<DnsProviderRecord>> {
            sqlx::query_as::<_, ProviderRow>(concat!(select_provider!(), " ORDER BY id"))
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(ProviderRow::into_model)
                .collect()
        }

        async fn dns_provider(&self, id: DnsProviderId) -> Result<DnsProviderRecord> {
            read_tx!(self, tx, { fetch_provider(tx, id).await })
        }

        async fn dns_provider_by_name(&self, name: &str) -> Result<DnsProviderRecord> {
            sqlx::query_as::<_, ProviderRow>(concat!(select_provider!(), " WHERE name = $1"))
                .bind(name)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| StoreError::not_found("DNS provider", name))?
                .into_model()
        }

        async fn zone(&self, id: ZoneId) -> Result<Zone> {
            read_tx!(self, tx, { fetch_zone(tx, id).await })
        }

        async fn zone_by_name(&self, name: &DomainName) -> Result<Zone> {
            read_tx!(self, tx, {
                let id: Option<i64> =
                    sqlx::query_scalar("SELECT id FROM dns_zones WHERE name = $1")
                        .bind(name.as_str())
                        .fetch_optional(&mut **tx)
                        .await?;
                let id = id.ok_or_else(|| StoreError::not_found("zone", name))?;
                fetch_zone(tx, ZoneId(id)).await
            })
        }

        async fn zones(&self, filter: ZoneFilter) -> Result<Vec<Zone>> {
            read_tx!(self, tx, {
                let ids: Vec<i64> = sqlx::query_scalar(
                    "SELECT id FROM dns_zones z WHERE id > $1 AND ($2 IS NULL OR EXISTS \
                     (SELECT 1 FROM dns_zone_providers zp WHERE zp.zone_id = z.id AND zp.provider_id = $2)) \
                     ORDER BY id LIMIT $3",
                )
                .bind(filter.after.map_or(0, ZoneId::get))
                .bind(filter.provider.map(DnsProviderId::get))
                .bind(i64::from(filter.limit.unwrap_or(u32::MAX >> 1)))
                .fetch_all(&mut **tx)
                .await?;
                load_zones(tx, &ids).await
            })
        }

        async fn account_zone(&self, account: AccountId) -> Result<Option<Zone>> {
            read_tx!(self, tx, {
                let id: Option<i64> = sqlx::query_scalar(
                    "SELECT z.id FROM dns_zones z JOIN accounts a ON a.id = z.account_id \
                     WHERE z.account_id = $1 AND z.name = a.domain",
                )
                .bind(account.get())
                .fetch_optional(&mut **tx)
                .await?;
                match id {
                    Some(id) => Ok(Some(fetch_zone(tx, ZoneId(id)).await?)),
                    None => Ok(None),
                }
            })
        }

        async fn account_zones(&self, account: AccountId) -> Result<Vec<Zone>> {
            read_tx!(self, tx, {
                let ids: Vec<i64> = sqlx::query_scalar(
                    "SELECT id FROM dns_zones WHERE account_id = $1 ORDER BY id",
                )
                .bind(account.get())
                .fetch_all(&mut **tx)
                .await?;
                let mut zones = Vec::with_capacity(ids.len());
                for id in ids {
                    zones.push(fetch_zone(tx, ZoneId(id)).await?);
                }
                Ok(zones)
            })
        }

        async fn forget_zone(&self, ctx: &RequestContext, zone: ZoneId) -> Result<()> {
            write_tx!(self, tx, {
                let before = fetch_zone(tx, zone).await?;
                for statement in [
                    "DELETE FROM dns_record_ids WHERE zone_id = $1",
                    "DELETE FROM dns_zone_providers WHERE zone_id = $1",
                    "DELETE FROM dns_rrsets WHERE zone_id = $1",
                    "DELETE FROM dns_zones WHERE id = $1",
                ] {
                    sqlx::query(statement)
                        .bind(zone.get())
                        .execute(&mut **tx)
                        .await?;
                }
                append_audit(
                    tx,
                    ctx,
                    "dns.zone.forget",
                    format!("zone:{}", before.name),
                    json!({}),
                )
                .await?;
                Ok(())
            })
        }

        async fn reserve_provider_call(
            &self,
            key: &str,
            limit: u32,
            window_ms: i64,
        ) -> Result<Option<i64>> {
            write_tx!(self, tx, {
                // Touching the key's row first serialises reservations on it (a row lock on
                // PostgreSQL; SQLite has one writer anyway), so a count and its insert agree.
                sqlx::query(
                    "INSERT INTO provider_budgets (budget_key, reserved) VALUES ($1, 0) \
                     ON CONFLICT (budget_key) DO UPDATE SET reserved = provider_budgets.reserved + 1",
                )
                .bind(key)
                .execute(&mut **tx)
                .await?;
                let now = jiff::Timestamp::now().as_millisecond();
                sqlx::query("DELETE FROM provider_calls WHERE budget_key = $1 AND at_ms <= $2")
                    .bind(key)
                    .bind(now - window_ms)
                    .execute(&mut **tx)
                    .await?;
                let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
                    "SELECT COUNT(*), MIN(at_ms) FROM provider_calls WHERE budget_key = $1",
                )
                .bind(key)
                .fetch_one(&mut **tx)
                .await?;
                if count < i64::from(limit) {
                    sqlx::query("INSERT INTO provider_calls (budget_key, at_ms) VALUES ($1, $2)")
                        .bind(key)
                        .bind(now)
                        .execute(&mut **tx)
                        .await?;
                    Ok(None)
                } else {
                    Ok(Some((oldest.unwrap_or(now) + window_ms - now).max(1)))
                }
            })
        }

        async fn record_ids(&self, zone: ZoneId, provider: DnsProviderId) -> Result<RecordIds> {
            let rows: Vec<(String, String, String, String)> = sqlx::query_as(
                "SELECT name, rtype, content, record_id FROM dns_record_ids WHERE zone_id = $1 AND provider_id = $2",
            )
            .bind(zone.get())
            .bind(provider.get())
            .fetch_all(&self.pool)
            .await?;
            rows.into_iter()
                .map(|(name, rtype, content, id)| {
                    let rtype =
                        RecordType::parse(&rtype).map_err(|e| corrupt("record id type", e))?;
                    Ok((
                        RecordKey {
                            name,
                            rtype,
                            content,
                        },
                        id,
                    ))
                })
                .collect()
        }

        async fn record_zone_syncs(
            &self,
            outcomes: &[(ZoneId, DnsProviderId, ZoneSyncOutcome)],
            audits: Vec<SyncAudit<'_>>,
        ) -> Result<()> {
            write_tx!(self, tx, {
                let now = sql_now();
                for (zone, provider, outcome) in outcomes {
                    sqlx::query(
                        "UPDATE dns_zone_providers SET synced_generation = COALESCE($3, synced_generation), \
                         provider_zone_id = COALESCE($4, provider_zone_id), last_error = $5, last_sync_at = $6 \
                         WHERE zone_id = $1 AND provider_id = $2",
                    )
                    .bind(zone.get())
                    .bind(provider.get())
                    .bind(outcome.generation)
                    .bind(&outcome.provider_zone_id)
                    .bind(&outcome.error)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
                    let Some(ids) = &outcome.record_ids else {
                        continue;
                    };
                    sqlx::query(
                        "DELETE FROM dns_record_ids WHERE zone_id = $1 AND provider_id = $2",
                    )
                    .bind(zone.get())
                    .bind(provider.get())
                    .execute(&mut **tx)
                    .await?;
                    for (key, id) in ids {
                        sqlx::query(
                            "INSERT INTO dns_record_ids (zone_id, provider_id, name, rtype, content, record_id) \
                             VALUES ($1, $2, $3, $4, $5, $6)",
                        )
                        .bind(zone.get())
                        .bind(provider.get())
                        .bind(&key.name)
                        .bind(key.rtype.as_str())
                        .bind(&key.content)
                        .bind(id)
                        .execute(&mut **tx)
                        .await?;
                    }
                }
                for SyncAudit {
                    ctx,
                    action,
                    subject,
                    details,
                } in audits
                {
                    append_audit(tx, ctx, action, subject, details).await?;
                }
                Ok(())
            })
        }

        async fn rewrite_addresses(
            &self,
            ctx: &RequestContext,
            moved: &AddressMove,
            after: Option<ZoneId>,
            limit: u32,
        ) -> Result<RewriteBatch> {
            write_tx!(self, tx, {
                // Zones holding an old address in an A/AAAA record or an SPF term; the pure
                // rewrite then decides exactly what changes.
                let mut candidates = BTreeSet::new();
                for old in &moved.from {
                    let ids: Vec<i64> = sqlx::query_scalar(
                        "SELECT DISTINCT r.zone_id FROM dns_rrsets r JOIN dns_zones z ON z.id = r.zone_id \
                         WHERE NOT z.deleting AND r.zone_id > $3 \
                         AND ((r.rtype IN ('A', 'AAAA') AND r.records LIKE $1) \
                         OR (r.rtype = 'TXT' AND r.records LIKE $2)) ORDER BY r.zone_id LIMIT $4",
                    )
                    .bind(format!("%\"{old}\"%"))
                    .bind(format!("%:{old}%"))
                    .bind(after.map_or(0, ZoneId::get))
                    .bind(i64::from(limit.max(1)))
                    .fetch_all(&mut **tx)
                    .await?;
                    candidates.extend(ids);
                }
                let ids: Vec<i64> = candidates.into_iter().take(limit.max(1) as usize).collect();
                let scanned_to = ids.last().copied().map(ZoneId);
                let mut rewrites = Vec::new();
                for mut zone in load_zones(tx, &ids).await? {
                    let diff: ZoneDiff = rewrite_addresses(&zone.rrsets, moved);
                    if diff.is_empty() {
                        continue;
                    }
                    for rrset in &diff.deletes {
                        drop_rrset(tx, zone.id, &rrset.name, rrset.rtype).await?;
                    }
                    for rrset in diff.upserts() {
                        save_rrset(tx, zone.id, rrset).await?;
                    }
                    bump_generation(tx, zone.id).await?;
                    // The zone as it now is, without reading it back.
                    zone.rrsets.retain(|r| !diff.touches(&r.name, r.rtype));
                    zone.rrsets.extend(diff.upserts().cloned());
                    zone.rrsets.sort_by(|a, b| a.key().cmp(&b.key()));
                    zone.generation += 1;
                    rewrites.push(ZoneRewrite { zone, diff });
                }
                if !rewrites.is_empty() {
                    append_audit(
                        tx,
                        ctx,
                        "dns.rewrite",
                        "dns".to_owned(),
                        json!({ "from": moved.from, "to": moved.to, "zones": rewrites.len() }),
                    )
                    .await?;
                }
                Ok(RewriteBatch {
                    rewrites,
                    scanned_to,
                })
            })
        }
    }
}
