// The command layer's write transaction on one SQL backend, included after `sql_store.rs` by
// `postgres.rs` and `sqlite.rs` (it uses that file's helpers). Data only: no rule is decided
// here.

mod write_sql {
    use async_trait::async_trait;
    use drover_core::{
        AccountId, Adopted, AdoptedMailbox, CustomerId, CustomerSpec, DatabaseName, DatabaseType,
        DesiredState, DnsProviderId, DomainName, DriftAction, MailboxName, MoveState, PlanId,
        PlanSpec, RrSet, Scope, ServerId, ServerSpec, ServerState, ServiceId, ServiceStatus,
        TokenId, UnixUsername, ZoneDiff, ZoneId,
    };
    use secrecy::SecretString;

    use super::{
        SqlStore, Tx, append_audit, duplicate_domain, insert_job, new_token_secret,
        next_free_username, sealed_with_the_recorded_key,
    };
    use crate::error::{Conflict, Reference, UniqueKey, unique_violation};
    use crate::jobs::RequestedJob;
    use crate::rows::{
        CustomerRow, DATABASE_COLUMNS, DatabaseRow, MAILBOX_COLUMNS, MailboxRow,
        OTHER_DOMAIN_COLUMNS, OtherDomainRow, TokenRow, corrupt, sql_now, token_hash,
    };
    use crate::write::{Enqueued, Generation, Job, Write};
    use crate::{
        Account, ApiToken, Customer, Database, DnsProviderRecord, DnsProviderSpec, Mailbox,
        Migration, NewService, OtherDomain, OtherDomainKind, Plan, RequestContext, Result, Server,
        Service, StoreError, Zone,
    };

    /// An account's mailboxes, by name.
    pub(super) async fn fetch_mailboxes(tx: &mut Tx, account: AccountId) -> Result<Vec<Mailbox>> {
        let mut mailboxes = sqlx::query_as::<_, MailboxRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {MAILBOX_COLUMNS} WHERE account_id = $1"
        )))
        .bind(account.get())
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(MailboxRow::into_model)
        .collect::<Result<Vec<_>>>()?;
        // By name in Rust: PostgreSQL's collation and SQLite's bytes order '.', '-', '_' apart.
        mailboxes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(mailboxes)
    }

    /// An account's databases, by name.
    pub(super) async fn fetch_databases(tx: &mut Tx, account: AccountId) -> Result<Vec<Database>> {
        let mut databases = sqlx::query_as::<_, DatabaseRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {DATABASE_COLUMNS} WHERE account_id = $1"
        )))
        .bind(account.get())
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(DatabaseRow::into_model)
        .collect::<Result<Vec<_>>>()?;
        databases.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(databases)
    }

    /// An account's alias domains or sub-servers, by domain.
    pub(super) async fn fetch_other_domains(
        tx: &mut Tx,
        account: AccountId,
        kind: OtherDomainKind,
    ) -> Result<Vec<OtherDomain>> {
        let mut domains = sqlx::query_as::<_, OtherDomainRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {OTHER_DOMAIN_COLUMNS} {} WHERE account_id = $1",
            kind.table()
        )))
        .bind(account.get())
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(OtherDomainRow::into_model)
        .collect::<Result<Vec<_>>>()?;
        domains.sort_by(|a, b| a.domain.as_str().cmp(b.domain.as_str()));
        Ok(domains)
    }

    /// Refuses a domain that is an account's alias or sub-server already: a domain is hosted
    /// once.
    async fn other_domain_holder(tx: &mut Tx, domain: &DomainName) -> Result<()> {
        for kind in [OtherDomainKind::Alias, OtherDomainKind::Subserver] {
            let holder: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT account_id FROM {} WHERE domain = $1",
                kind.table()
            )))
            .bind(domain.as_str())
            .fetch_optional(&mut **tx)
            .await?;
            if let Some(account) = holder {
                return Err(StoreError::duplicate(
                    UniqueKey::Domain,
                    format!(
                        "the domain {} ({}) is already account {account}'s {}; a domain can be \
                         hosted only once",
                        domain.as_str(),
                        domain.to_unicode(),
                        kind.as_str()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// An update of one of an account's resources found it (`what` named `name`), or not.
    fn found(
        changed: u64,
        what: &'static str,
        account: AccountId,
        name: impl std::fmt::Display,
    ) -> Result<()> {
        match changed {
            0 => Err(StoreError::not_found(
                what,
                format!("{name} of account {account}"),
            )),
            _ => Ok(()),
        }
    }

    pub(super) struct SqlWrite {
        pub(super) tx: Tx,
        pub(super) queue: riverqueue::Client,
    }

    /// Rows a read locks until the transaction ends.
    #[derive(Clone, Copy)]
    enum Locked {
        Account,
        Service,
        Plan,
        Server,
        Zone,
    }

    /// A mailbox row as it is first written.
    struct NewMailbox<'a> {
        name: &'a MailboxName,
        real_name: &'a str,
        quota_mb: Option<u64>,
        sealed: &'a [u8],
        /// `sealed` holds a server's hash of the password (from an adoption).
        is_hash: bool,
    }

    impl SqlWrite {
        /// Locks the row, if there is one (PostgreSQL; SQLite's writes are serial already).
        async fn lock(&mut self, table: Locked, id: i64) -> Result<()> {
            let table = match table {
                Locked::Account => "accounts",
                Locked::Service => "services",
                Locked::Plan => "plans",
                Locked::Server => "servers",
                Locked::Zone => "dns_zones",
            };
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT id FROM {table} WHERE id = $1{}",
                super::FOR_UPDATE
            )))
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?;
            Ok(())
        }

        /// A new mailbox row. The key's row, then the account's (as a rotation locks them),
        /// then the mailbox; a password's hash taken from a server is nothing to apply.
        async fn insert_mailbox_row(
            &mut self,
            account: AccountId,
            new: NewMailbox<'_>,
            key_id: &str,
        ) -> Result<Mailbox> {
            sealed_with_the_recorded_key(&mut self.tx, key_id).await?;
            self.account(account).await?;
            let name = new.name;
            sqlx::query(
                "INSERT INTO mailboxes (account_id, name, real_name, quota_mb, sealed_password, \
                 password_is_hash, password_applied, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
            )
            .bind(account.get())
            .bind(name.as_str())
            .bind(new.real_name)
            .bind(new.quota_mb.map(|mb| i64::try_from(mb).unwrap_or(i64::MAX)))
            .bind(new.sealed)
            .bind(new.is_hash)
            .bind(i64::from(new.is_hash))
            .bind(sql_now())
            .execute(&mut *self.tx)
            .await
            .map_err(|e| match unique_violation(&e) {
                Some(_) => StoreError::duplicate(
                    UniqueKey::MailboxName,
                    format!("account {account} has a mailbox named '{name}' already"),
                ),
                None => e.into(),
            })?;
            fetch_mailboxes(&mut self.tx, account)
                .await?
                .into_iter()
                .find(|m| &m.name == name)
                .ok_or_else(|| StoreError::not_found("mailbox", name))
        }

        async fn referenced_plan(&mut self, plan: PlanId) -> Result<()> {
            let found: Option<i64> = sqlx::query_scalar("SELECT id FROM plans WHERE id = $1")
                .bind(plan.get())
                .fetch_optional(&mut *self.tx)
                .await?;
            match found {
                Some(_) => Ok(()),
                None => Err(StoreError::unknown(
                    Reference::Plan,
                    format!("plan {plan} does not exist; list plans with GET /api/v1/plans"),
                )),
            }
        }
    }

    #[async_trait]
    impl Write for SqlWrite {
        async fn service(&mut self, id: ServiceId) -> Result<Service> {
            self.lock(Locked::Service, id.get()).await?;
            SqlStore::fetch_service(&mut self.tx, id).await
        }

        async fn account(&mut self, id: AccountId) -> Result<Account> {
            self.lock(Locked::Account, id.get()).await?;
            SqlStore::fetch_account(&mut self.tx, id).await
        }

        async fn plan(&mut self, id: PlanId) -> Result<Plan> {
            self.lock(Locked::Plan, id.get()).await?;
            SqlStore::fetch_plan(&mut self.tx, id).await
        }

        async fn server(&mut self, id: ServerId) -> Result<Server> {
            self.lock(Locked::Server, id.get()).await?;
            SqlStore::fetch_server(&mut self.tx, id).await
        }

        async fn free_username(&mut self, domain: &DomainName) -> Result<UnixUsername> {
            next_free_username(&mut self.tx, domain, None).await
        }

        async fn zone(&mut self, id: ZoneId) -> Result<Zone> {
            self.lock(Locked::Zone, id.get()).await?;
            super::dns_sql::fetch_zone(&mut self.tx, id).await
        }

        async fn dns_provider(&mut self, id: DnsProviderId) -> Result<DnsProviderRecord> {
            super::dns_sql::fetch_provider(&mut self.tx, id).await
        }

        async fn migration(&mut self, account: AccountId) -> Result<Option<Migration>> {
            super::fleet_sql::fetch_migration(&mut self.tx, account).await
        }

        async fn active_operator_tokens(&mut self) -> Result<Vec<TokenId>> {
            let ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT id FROM api_tokens WHERE scope = 'operator' AND revoked_at IS NULL \
                 ORDER BY id{}",
                super::FOR_UPDATE
            )))
            .fetch_all(&mut *self.tx)
            .await?;
            Ok(ids.into_iter().map(TokenId).collect())
        }

        async fn failed_accounts(&mut self) -> Result<Vec<Account>> {
            sqlx::query_as::<_, crate::rows::AccountRow>(concat!(
                select_account!(),
                " WHERE failure IS NOT NULL ORDER BY id"
            ))
            .fetch_all(&mut *self.tx)
            .await?
            .into_iter()
            .map(crate::rows::AccountRow::into_model)
            .collect()
        }

        async fn accounts_kept_on(&mut self, server: ServerId) -> Result<i64> {
            Ok(sqlx::query_scalar(
                "SELECT COUNT(*) FROM accounts WHERE server_id = $1 AND desired_state <> 'absent'",
            )
            .bind(server.get())
            .fetch_one(&mut *self.tx)
            .await?)
        }

        async fn accounts_on_plan(&mut self, plan: PlanId) -> Result<Vec<Account>> {
            sqlx::query_as::<_, crate::rows::AccountRow>(concat!(
                select_account!(),
                " WHERE service_id IN \
                 (SELECT id FROM services WHERE plan_id = $1 AND status <> 'terminated') \
                 ORDER BY id"
            ))
            .bind(plan.get())
            .fetch_all(&mut *self.tx)
            .await?
            .into_iter()
            .map(crate::rows::AccountRow::into_model)
            .collect()
        }

        async fn insert_customer(&mut self, spec: &CustomerSpec) -> Result<Customer> {
            Ok(sqlx::query_as::<_, CustomerRow>(
                "INSERT INTO customers (name, email, external_ref, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $4) \
                 RETURNING id, name, email, external_ref, created_at, updated_at",
            )
            .bind(&spec.name)
            .bind(&spec.email)
            .bind(&spec.external_ref)
            .bind(sql_now())
            .fetch_one(&mut *self.tx)
            .await
            .map_err(|e| match unique_violation(&e) {
                Some(_) => StoreError::duplicate(
                    UniqueKey::CustomerExternalRef,
                    format!(
                        "a customer with external_ref '{}' already exists",
                        spec.external_ref.as_deref().unwrap_or_default()
                    ),
                ),
                None => e.into(),
            })?
            .into_model())
        }

        async fn insert_plan(&mut self, spec: &PlanSpec) -> Result<Plan> {
            SqlStore::save_plan(&mut self.tx, None, spec).await
        }

        async fn insert_server(&mut self, spec: &ServerSpec) -> Result<Server> {
            SqlStore::save_server(&mut self.tx, None, spec).await
        }

        async fn update_server(&mut self, id: ServerId, spec: &ServerSpec) -> Result<Server> {
            SqlStore::save_server(&mut self.tx, Some(id), spec).await
        }

        async fn clear_login_refused(&mut self, id: ServerId) -> Result<bool> {
            let changed = sqlx::query(
                "UPDATE servers SET login_refused = NULL, login_refused_at = NULL, \
                 login_refused_secret = NULL, updated_at = $2 \
                 WHERE id = $1 AND login_refused IS NOT NULL",
            )
            .bind(id.get())
            .bind(sql_now())
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
            Ok(changed > 0)
        }

        async fn insert_token(
            &mut self,
            name: &str,
            scope: Scope,
        ) -> Result<(ApiToken, SecretString)> {
            let secret = new_token_secret();
            let token = sqlx::query_as::<_, TokenRow>(
                "INSERT INTO api_tokens (name, scope, token_hash, created_at) \
                 VALUES ($1, $2, $3, $4) RETURNING id, name, scope, created_at, revoked_at",
            )
            .bind(name)
            .bind(scope.as_str())
            .bind(token_hash(&secret))
            .bind(sql_now())
            .fetch_one(&mut *self.tx)
            .await?
            .into_model()?;
            Ok((token, SecretString::from(secret)))
        }

        async fn insert_dns_provider(
            &mut self,
            spec: &DnsProviderSpec,
        ) -> Result<DnsProviderRecord> {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO dns_providers (name, credentials, serves_new_zones, settings, \
                 created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(&spec.name)
            .bind(spec.credentials.to_string())
            .bind(spec.serves_new_zones)
            .bind(
                serde_json::to_string(&spec.settings)
                    .map_err(|e| corrupt("provider settings", e))?,
            )
            .bind(sql_now())
            .fetch_one(&mut *self.tx)
            .await
            .map_err(|e| match unique_violation(&e) {
                Some(_) => StoreError::duplicate(
                    UniqueKey::DnsProviderName,
                    format!("a DNS provider named '{}' exists already", spec.name),
                ),
                None => e.into(),
            })?;
            super::dns_sql::fetch_provider(&mut self.tx, DnsProviderId(id)).await
        }

        async fn insert_zone(
            &mut self,
            name: &DomainName,
            account: Option<AccountId>,
            rrsets: &[RrSet],
            providers: &[DnsProviderId],
        ) -> Result<Zone> {
            let now = sql_now();
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO dns_zones (name, account_id, generation, deleting, created_at, \
                 updated_at) VALUES ($1, $2, 1, FALSE, $3, $3) RETURNING id",
            )
            .bind(name.as_str())
            .bind(account.map(AccountId::get))
            .bind(now)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(|e| match unique_violation(&e) {
                Some(_) => StoreError::duplicate(
                    UniqueKey::ZoneName,
                    format!("drover holds a zone {name} already"),
                ),
                None => e.into(),
            })?;
            let zone = ZoneId(id);
            for rrset in rrsets {
                super::dns_sql::save_rrset(&mut self.tx, zone, rrset).await?;
            }
            for provider in providers {
                sqlx::query(
                    "INSERT INTO dns_zone_providers (zone_id, provider_id, synced_generation) \
                     VALUES ($1, $2, 0)",
                )
                .bind(id)
                .bind(provider.get())
                .execute(&mut *self.tx)
                .await
                .map_err(|e| {
                    match e.as_database_error().map(|d| d.is_foreign_key_violation()) {
                        Some(true) => StoreError::unknown(
                            Reference::DnsProvider,
                            format!("DNS provider {provider} does not exist"),
                        ),
                        _ => e.into(),
                    }
                })?;
            }
            super::dns_sql::fetch_zone(&mut self.tx, zone).await
        }

        async fn insert_adopted_account(
            &mut self,
            customer: CustomerId,
            server: ServerId,
            account: &Adopted,
        ) -> Result<(ServiceId, AccountId)> {
            other_domain_holder(&mut self.tx, &account.domain).await?;
            let now = sql_now();
            let status = match account.state {
                DesiredState::Disabled => ServiceStatus::Suspended,
                _ => ServiceStatus::Active,
            };
            let service: i64 = sqlx::query_scalar(
                "INSERT INTO services (customer_id, plan_id, status, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $4) RETURNING id",
            )
            .bind(customer.get())
            .bind(account.plan.get())
            .bind(status.as_str())
            .bind(now)
            .fetch_one(&mut *self.tx)
            .await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO accounts (service_id, domain, unix_username, server_id, \
                 desired_state, desired_generation, applied_generation, observed_state, \
                 protected_from_deletion, suspend_reason, last_sync_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, 1, 1, $5, TRUE, $6, $7, $7, $7) RETURNING id",
            )
            .bind(service)
            .bind(account.domain.as_str())
            .bind(account.unix_username.as_str())
            .bind(server.get())
            .bind(account.state.as_str())
            .bind(&account.suspend_reason)
            .bind(now)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(|e| match unique_violation(&e) {
                Some(_) => StoreError::duplicate(
                    UniqueKey::Domain,
                    format!(
                        "{} or its unix user {} is taken",
                        account.domain.to_unicode(),
                        account.unix_username.as_str()
                    ),
                ),
                None => e.into(),
            })?;
            Ok((ServiceId(service), AccountId(id)))
        }

        async fn mailboxes(&mut self, account: AccountId) -> Result<Vec<Mailbox>> {
            self.lock(Locked::Account, account.get()).await?;
            fetch_mailboxes(&mut self.tx, account).await
        }

        async fn insert_mailbox(
            &mut self,
            account: AccountId,
            name: &MailboxName,
            real_name: &str,
            sealed_password: &[u8],
            key_id: &str,
        ) -> Result<Mailbox> {
            let new = NewMailbox {
                name,
                real_name,
                quota_mb: None,
                sealed: sealed_password,
                is_hash: false,
            };
            self.insert_mailbox_row(account, new, key_id).await
        }

        async fn insert_adopted_mailbox(
            &mut self,
            account: AccountId,
            mailbox: &AdoptedMailbox,
            sealed_hash: &[u8],
            key_id: &str,
        ) -> Result<Mailbox> {
            let new = NewMailbox {
                name: &mailbox.name,
                real_name: &mailbox.real_name,
                quota_mb: mailbox.quota_mb,
                sealed: sealed_hash,
                is_hash: true,
            };
            self.insert_mailbox_row(account, new, key_id).await
        }

        async fn update_mailbox_real_name(
            &mut self,
            account: AccountId,
            name: &MailboxName,
            real_name: &str,
        ) -> Result<()> {
            let changed = sqlx::query(
                "UPDATE mailboxes SET real_name = $3, updated_at = $4 \
                 WHERE account_id = $1 AND name = $2",
            )
            .bind(account.get())
            .bind(name.as_str())
            .bind(real_name)
            .bind(sql_now())
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
            found(changed, "mailbox", account, name)
        }

        async fn update_mailbox_password(
            &mut self,
            account: AccountId,
            name: &MailboxName,
            sealed_password: &[u8],
            key_id: &str,
        ) -> Result<()> {
            sealed_with_the_recorded_key(&mut self.tx, key_id).await?;
            self.account(account).await?;
            let changed = sqlx::query(
                "UPDATE mailboxes SET sealed_password = $3, password_is_hash = FALSE, \
                 password_generation = password_generation + 1, updated_at = $4 \
                 WHERE account_id = $1 AND name = $2",
            )
            .bind(account.get())
            .bind(name.as_str())
            .bind(sealed_password)
            .bind(sql_now())
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
            found(changed, "mailbox", account, name)
        }

        async fn set_mailbox_quota(
            &mut self,
            account: AccountId,
            name: &MailboxName,
            quota_mb: Option<u64>,
        ) -> Result<()> {
            let changed = sqlx::query(
                "UPDATE mailboxes SET quota_mb = $3, updated_at = $4 \
                 WHERE account_id = $1 AND name = $2",
            )
            .bind(account.get())
            .bind(name.as_str())
            .bind(quota_mb.map(|mb| i64::try_from(mb).unwrap_or(i64::MAX)))
            .bind(sql_now())
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
            found(changed, "mailbox", account, name)
        }

        async fn mark_mailbox_deleting(
            &mut self,
            account: AccountId,
            name: &MailboxName,
        ) -> Result<()> {
            let changed = sqlx::query(
                "UPDATE mailboxes SET deleting = TRUE, updated_at = $3 \
                 WHERE account_id = $1 AND name = $2",
            )
            .bind(account.get())
            .bind(name.as_str())
            .bind(sql_now())
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
            found(changed, "mailbox", account, name)
        }

        async fn databases(&mut self, account: AccountId) -> Result<Vec<Database>> {
            self.lock(Locked::Account, account.get()).await?;
            fetch_databases(&mut self.tx, account).await
        }

        async fn insert_database(
            &mut self,
            account: AccountId,
            name: &DatabaseName,
            kind: DatabaseType,
        ) -> Result<Database> {
            self.account(account).await?;
            sqlx::query(
                "INSERT INTO databases (account_id, name, type, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $4)",
            )
            .bind(account.get())
            .bind(name.as_str())
            .bind(kind.as_str())
            .bind(sql_now())
            .execute(&mut *self.tx)
            .await
            .map_err(|e| match unique_violation(&e) {
                Some(_) => StoreError::duplicate(
                    UniqueKey::DatabaseName,
                    format!("a database named '{name}' is recorded already"),
                ),
                None => e.into(),
            })?;
            fetch_databases(&mut self.tx, account)
                .await?
                .into_iter()
                .find(|d| &d.name == name)
                .ok_or_else(|| StoreError::not_found("database", name))
        }

        async fn mark_database_deleting(
            &mut self,
            account: AccountId,
            name: &DatabaseName,
        ) -> Result<()> {
            let changed = sqlx::query(
                "UPDATE databases SET deleting = TRUE, updated_at = $3 \
                 WHERE account_id = $1 AND name = $2",
            )
            .bind(account.get())
            .bind(name.as_str())
            .bind(sql_now())
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
            found(changed, "database", account, name)
        }

        async fn set_over_limit(&mut self, account: AccountId, over: Option<&str>) -> Result<()> {
            sqlx::query("UPDATE accounts SET over_limit = $2 WHERE id = $1")
                .bind(account.get())
                .bind(over)
                .execute(&mut *self.tx)
                .await?;
            Ok(())
        }

        async fn other_domains(
            &mut self,
            account: AccountId,
            kind: OtherDomainKind,
        ) -> Result<Vec<OtherDomain>> {
            self.lock(Locked::Account, account.get()).await?;
            fetch_other_domains(&mut self.tx, account, kind).await
        }

        async fn insert_other_domain(
            &mut self,
            account: AccountId,
            kind: OtherDomainKind,
            domain: &DomainName,
        ) -> Result<OtherDomain> {
            self.account(account).await?;
            let holder: Option<i64> =
                sqlx::query_scalar("SELECT service_id FROM accounts WHERE domain = $1")
                    .bind(domain.as_str())
                    .fetch_optional(&mut *self.tx)
                    .await?;
            if let Some(service) = holder {
                return Err(duplicate_domain(domain, Some(service)));
            }
            other_domain_holder(&mut self.tx, domain).await?;
            // An alias under another account's domain would shadow that account's zone.
            let above: Option<(i64, String)> = sqlx::query_as(
                "SELECT id, domain FROM accounts WHERE id <> $2 AND $1 LIKE '%.' || domain",
            )
            .bind(domain.as_str())
            .bind(account.get())
            .fetch_optional(&mut *self.tx)
            .await?;
            if let (OtherDomainKind::Alias, Some((other, parent))) = (kind, above) {
                return Err(StoreError::duplicate(
                    UniqueKey::Domain,
                    format!(
                        "the domain {} is under {parent}, account {other}'s domain: a name there \
                         is that account's, not an alias of another",
                        domain.as_str()
                    ),
                ));
            }
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {} (account_id, domain, created_at, updated_at) \
                 VALUES ($1, $2, $3, $3)",
                kind.table()
            )))
            .bind(account.get())
            .bind(domain.as_str())
            .bind(sql_now())
            .execute(&mut *self.tx)
            .await
            .map_err(|e| match unique_violation(&e) {
                // Another request took it a moment before.
                Some(_) => duplicate_domain(domain, None),
                None => e.into(),
            })?;
            fetch_other_domains(&mut self.tx, account, kind)
                .await?
                .into_iter()
                .find(|a| &a.domain == domain)
                .ok_or_else(|| StoreError::not_found(kind.as_str(), domain.as_str()))
        }

        async fn mark_other_domain_deleting(
            &mut self,
            account: AccountId,
            kind: OtherDomainKind,
            domain: &DomainName,
        ) -> Result<()> {
            let changed = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {} SET deleting = TRUE, updated_at = $3 \
                 WHERE account_id = $1 AND domain = $2",
                kind.table()
            )))
            .bind(account.get())
            .bind(domain.as_str())
            .bind(sql_now())
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
            found(changed, kind.as_str(), account, domain)
        }

        async fn insert_service(
            &mut self,
            new: &NewService,
            username: &UnixUsername,
        ) -> Result<Service> {
            let exists = |sql: &'static str, id: i64| sqlx::query_scalar::<_, i64>(sql).bind(id);
            if exists(
                "SELECT id FROM customers WHERE id = $1",
                new.customer_id.get(),
            )
            .fetch_optional(&mut *self.tx)
            .await?
            .is_none()
            {
                return Err(StoreError::unknown(
                    Reference::Customer,
                    format!("customer {} does not exist", new.customer_id),
                ));
            }
            self.referenced_plan(new.plan_id).await?;
            let holder: Option<i64> =
                sqlx::query_scalar("SELECT service_id FROM accounts WHERE domain = $1")
                    .bind(new.domain.as_str())
                    .fetch_optional(&mut *self.tx)
                    .await?;
            if let Some(service) = holder {
                return Err(duplicate_domain(&new.domain, Some(service)));
            }
            other_domain_holder(&mut self.tx, &new.domain).await?;
            let now = sql_now();
            let service_id: i64 = sqlx::query_scalar(
                "INSERT INTO services (customer_id, plan_id, status, created_at, updated_at) \
                 VALUES ($1, $2, 'pending', $3, $3) RETURNING id",
            )
            .bind(new.customer_id.get())
            .bind(new.plan_id.get())
            .bind(now)
            .fetch_one(&mut *self.tx)
            .await?;
            sqlx::query(
                "INSERT INTO accounts (service_id, domain, unix_username, desired_state, \
                 desired_generation, created_at, updated_at) \
                 VALUES ($1, $2, $3, 'absent', 1, $4, $4)",
            )
            .bind(service_id)
            .bind(new.domain.as_str())
            .bind(username.as_str())
            .bind(now)
            .execute(&mut *self.tx)
            .await
            .map_err(|e| match unique_violation(&e) {
                Some(c) if c.contains("domain") => duplicate_domain(&new.domain, None),
                Some(_) => StoreError::conflict(
                    Conflict::ConcurrentChange,
                    "another service took the same unix user name at the same moment; \
                     send the request again"
                        .into(),
                ),
                None => e.into(),
            })?;
            SqlStore::fetch_service(&mut self.tx, ServiceId(service_id)).await
        }

        async fn update_service_status(
            &mut self,
            id: ServiceId,
            from: ServiceStatus,
            to: ServiceStatus,
        ) -> Result<()> {
            let moved = sqlx::query(
                "UPDATE services SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4",
            )
            .bind(to.as_str())
            .bind(sql_now())
            .bind(id.get())
            .bind(from.as_str())
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
            if moved == 0 {
                return Err(StoreError::conflict(
                    Conflict::ConcurrentChange,
                    format!("service {id} changed while this request ran; send it again"),
                ));
            }
            Ok(())
        }

        async fn update_plan(&mut self, id: PlanId, spec: &PlanSpec) -> Result<Plan> {
            SqlStore::save_plan(&mut self.tx, Some(id), spec).await
        }

        async fn revoke_token(&mut self, id: TokenId) -> Result<ApiToken> {
            sqlx::query_as::<_, crate::rows::TokenRow>(
                "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 \
                 RETURNING id, name, scope, created_at, revoked_at",
            )
            .bind(sql_now())
            .bind(id.get())
            .fetch_optional(&mut *self.tx)
            .await?
            .ok_or_else(|| StoreError::not_found("token", id))?
            .into_model()
        }

        async fn update_service_plan(&mut self, id: ServiceId, plan: PlanId) -> Result<()> {
            self.referenced_plan(plan).await?;
            sqlx::query("UPDATE services SET plan_id = $1, updated_at = $2 WHERE id = $3")
                .bind(plan.get())
                .bind(sql_now())
                .bind(id.get())
                .execute(&mut *self.tx)
                .await?;
            Ok(())
        }

        async fn update_account_desired(
            &mut self,
            id: AccountId,
            desired: DesiredState,
            suspend_reason: Option<&str>,
        ) -> Result<()> {
            sqlx::query(
                "UPDATE accounts SET desired_state = $1, suspend_reason = $2, updated_at = $3 \
                 WHERE id = $4",
            )
            .bind(desired.as_str())
            .bind(suspend_reason)
            .bind(sql_now())
            .bind(id.get())
            .execute(&mut *self.tx)
            .await?;
            Ok(())
        }

        async fn update_account_protection(
            &mut self,
            id: AccountId,
            protected: bool,
        ) -> Result<()> {
            sqlx::query(
                "UPDATE accounts SET protected_from_deletion = $1, updated_at = $2 WHERE id = $3",
            )
            .bind(protected)
            .bind(sql_now())
            .bind(id.get())
            .execute(&mut *self.tx)
            .await?;
            Ok(())
        }

        async fn update_sealed_password(
            &mut self,
            id: AccountId,
            sealed: &[u8],
            key_id: &str,
        ) -> Result<()> {
            sealed_with_the_recorded_key(&mut self.tx, key_id).await?;
            sqlx::query("UPDATE accounts SET sealed_password = $1, updated_at = $2 WHERE id = $3")
                .bind(sealed)
                .bind(sql_now())
                .bind(id.get())
                .execute(&mut *self.tx)
                .await?;
            Ok(())
        }

        async fn update_server_state(&mut self, id: ServerId, state: ServerState) -> Result<()> {
            sqlx::query("UPDATE servers SET state = $1, updated_at = $2 WHERE id = $3")
                .bind(state.as_str())
                .bind(sql_now())
                .bind(id.get())
                .execute(&mut *self.tx)
                .await?;
            Ok(())
        }

        async fn update_break_glass(
            &mut self,
            id: ServerId,
            mark: Option<(&str, &RequestContext)>,
        ) -> Result<()> {
            sqlx::query(
                "UPDATE servers SET break_glass = $1, break_glass_by = $2, break_glass_at = $3, \
                 updated_at = $4 WHERE id = $5",
            )
            .bind(mark.map(|(reason, _)| reason))
            .bind(mark.map(|(_, ctx)| ctx.actor.as_str()))
            .bind(mark.map(|_| sql_now()))
            .bind(sql_now())
            .bind(id.get())
            .execute(&mut *self.tx)
            .await?;
            Ok(())
        }

        async fn update_account_server(&mut self, id: AccountId, server: ServerId) -> Result<()> {
            sqlx::query("UPDATE accounts SET server_id = $1, updated_at = $2 WHERE id = $3")
                .bind(server.get())
                .bind(sql_now())
                .bind(id.get())
                .execute(&mut *self.tx)
                .await?;
            Ok(())
        }

        async fn insert_migration(&mut self, new: &crate::NewMigration) -> Result<()> {
            sqlx::query(
                "INSERT INTO account_migrations (account_id, from_server, to_server, state, \
                 delete_after_ms, confirmed, failover, created_at, updated_at, restore_from, \
                 without_content) \
                 VALUES ($1, $2, $3, $4, $5, FALSE, $6, $7, $7, $8, $9) \
                 ON CONFLICT (account_id) DO UPDATE SET from_server = excluded.from_server, \
                 to_server = excluded.to_server, state = excluded.state, \
                 delete_after_ms = excluded.delete_after_ms, confirmed = FALSE, \
                 failover = excluded.failover, updated_at = excluded.updated_at, \
                 restore_from = excluded.restore_from, \
                 without_content = excluded.without_content",
            )
            .bind(new.account.get())
            .bind(new.from.get())
            .bind(new.to.get())
            .bind(MoveState::Creating.as_str())
            .bind(new.delete_after.as_millisecond())
            .bind(new.failover)
            .bind(sql_now())
            .bind(new.restore_from.map(|b| b.get()))
            .bind(new.without_content)
            .execute(&mut *self.tx)
            .await?;
            Ok(())
        }

        async fn update_migration_state(
            &mut self,
            account: AccountId,
            state: MoveState,
        ) -> Result<()> {
            sqlx::query(
                "UPDATE account_migrations SET state = $1, updated_at = $2 WHERE account_id = $3",
            )
            .bind(state.as_str())
            .bind(sql_now())
            .bind(account.get())
            .execute(&mut *self.tx)
            .await?;
            Ok(())
        }

        async fn update_migration_confirmed(&mut self, account: AccountId) -> Result<()> {
            sqlx::query(
                "UPDATE account_migrations SET confirmed = TRUE, updated_at = $1 \
                 WHERE account_id = $2",
            )
            .bind(sql_now())
            .bind(account.get())
            .execute(&mut *self.tx)
            .await?;
            Ok(())
        }

        async fn update_rrsets(&mut self, zone: ZoneId, diff: &ZoneDiff) -> Result<()> {
            for rrset in &diff.deletes {
                super::dns_sql::drop_rrset(&mut self.tx, zone, &rrset.name, rrset.rtype).await?;
            }
            for rrset in diff.upserts() {
                super::dns_sql::save_rrset(&mut self.tx, zone, rrset).await?;
            }
            Ok(())
        }

        async fn next_zone_generation(&mut self, zone: ZoneId) -> Result<()> {
            super::dns_sql::bump_generation(&mut self.tx, zone).await
        }

        async fn update_zone_safety(
            &mut self,
            zone: ZoneId,
            max_change_percent: Option<u8>,
        ) -> Result<()> {
            sqlx::query(
                "UPDATE dns_zones SET max_change_percent = $1, updated_at = $2 WHERE id = $3",
            )
            .bind(max_change_percent.map(i64::from))
            .bind(sql_now())
            .bind(zone.get())
            .execute(&mut *self.tx)
            .await?;
            Ok(())
        }

        async fn mark_zone_deleting(&mut self, zone: ZoneId) -> Result<()> {
            sqlx::query("UPDATE dns_zones SET deleting = TRUE, updated_at = $1 WHERE id = $2")
                .bind(sql_now())
                .bind(zone.get())
                .execute(&mut *self.tx)
                .await?;
            Ok(())
        }

        async fn update_drift_action(
            &mut self,
            server: ServerId,
            finding: i64,
            action: DriftAction,
        ) -> Result<()> {
            sqlx::query("UPDATE drift_findings SET action = $1 WHERE id = $2 AND server_id = $3")
                .bind(super::fleet_sql::action_name(action))
                .bind(finding)
                .bind(server.get())
                .execute(&mut *self.tx)
                .await?;
            Ok(())
        }

        async fn reset_health_streak(&mut self, id: ServerId) -> Result<()> {
            sqlx::query(
                "UPDATE server_health SET failures = 0, degraded = 0, healthy = 0 \
                 WHERE server_id = $1",
            )
            .bind(id.get())
            .execute(&mut *self.tx)
            .await?;
            Ok(())
        }

        async fn next_generation(&mut self, id: AccountId) -> Result<Generation> {
            let (generation, converge_ended_by): (i64, Option<i64>) = sqlx::query_as(
                "UPDATE accounts SET desired_generation = desired_generation + 1, \
                 updated_at = $1 WHERE id = $2 RETURNING desired_generation, converge_ended_by",
            )
            .bind(sql_now())
            .bind(id.get())
            .fetch_optional(&mut *self.tx)
            .await?
            .ok_or_else(|| StoreError::not_found("account", id))?;
            Ok(Generation {
                generation,
                converge_ended_by,
            })
        }

        async fn enqueue(&mut self, ctx: &RequestContext, job: Job) -> Result<Enqueued> {
            let opts = riverqueue::InsertOpts::default();
            let (tx, queue) = (&mut self.tx, &self.queue);
            let (id, joined) = match job {
                Job::Converge(args) => {
                    let account = Some(AccountId(args.account_id));
                    insert_job(queue, tx, ctx, account, args, opts).await?
                }
                Job::SetPassword(args) => {
                    let account = Some(AccountId(args.account_id));
                    insert_job(queue, tx, ctx, account, args, opts).await?
                }
                Job::SyncPlan(args) => insert_job(queue, tx, ctx, None, args, opts).await?,
                Job::SyncZone { args, account } => {
                    insert_job(queue, tx, ctx, account, args, opts).await?
                }
                Job::Requested { job, attempts } => {
                    let opts = opts.with_max_attempts(attempts);
                    match job {
                        RequestedJob::HealthCheck(args) => {
                            insert_job(queue, tx, ctx, None, args, opts).await?
                        }
                        RequestedJob::DriftScan(args) => {
                            insert_job(queue, tx, ctx, None, args, opts).await?
                        }
                        RequestedJob::OrphanDeletion(args) => {
                            insert_job(queue, tx, ctx, None, args, opts).await?
                        }
                        RequestedJob::UsageSync(args) => {
                            insert_job(queue, tx, ctx, None, args, opts).await?
                        }
                        RequestedJob::ZonePlan(args) => {
                            insert_job(queue, tx, ctx, None, args, opts).await?
                        }
                        RequestedJob::ZoneCheck(args) => {
                            insert_job(queue, tx, ctx, None, args, opts).await?
                        }
                        RequestedJob::Adoption(args) => {
                            insert_job(queue, tx, ctx, None, args, opts).await?
                        }
                        RequestedJob::LoginLink(args) => {
                            insert_job(queue, tx, ctx, None, args, opts).await?
                        }
                        RequestedJob::OverSsh(args) => {
                            insert_job(queue, tx, ctx, None, args, opts).await?
                        }
                    }
                }
                Job::RewriteAddresses(args) => insert_job(queue, tx, ctx, None, args, opts).await?,
                Job::Restore(args) => {
                    let account = Some(AccountId(args.account_id));
                    let opts = opts.with_max_attempts(1);
                    insert_job(queue, tx, ctx, account, args, opts).await?
                }
                Job::Migrate { args, at } => {
                    let account = Some(AccountId(args.account_id));
                    let opts = match at {
                        Some(at) => opts.with_scheduled_at(at),
                        None => opts,
                    };
                    insert_job(queue, tx, ctx, account, args, opts).await?
                }
            };
            Ok(Enqueued { id, joined })
        }

        async fn audit(
            &mut self,
            ctx: &RequestContext,
            action: &str,
            subject: String,
            details: serde_json::Value,
        ) -> Result<()> {
            append_audit(&mut self.tx, ctx, action, subject, details).await
        }

        async fn event(
            &mut self,
            ctx: &RequestContext,
            event: &crate::NewEvent,
        ) -> Result<Option<drover_core::EventId>> {
            super::append_event(&mut self.tx, &self.queue, ctx, event).await
        }

        async fn commit(self: Box<Self>) -> Result<()> {
            Ok(self.tx.commit().await?)
        }
    }
}
