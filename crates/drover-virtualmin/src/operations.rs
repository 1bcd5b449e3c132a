//! The typed operations drover needs, each one call (or two, where the server's answer alone
//! cannot say what happened).

use drover_core::{BackupLocation, SshKeyFile};
use secrecy::{ExposeSecret, SecretString};

use crate::client::VirtualminClient;
use crate::domain::{DomainDatabase, DomainInfo, DomainUser, PasswordHash};
use crate::error::{ErrorKind, VirtualminError, classify_failure};
use crate::reply::{Record, Reply, text_records};
use crate::request::{Call, OperationClass};

/// Everything `create-domain` is told. Names are drover's, chosen before the call, so a
/// rebuild recreates exactly the same thing.
#[derive(Debug, Clone)]
pub struct NewDomain {
    pub domain: String,
    pub password: SecretString,
    pub unix_user: Option<String>,
    pub plan: Option<String>,
    pub template: Option<String>,
    /// Feature flags (`web`, `dns`, …); empty means the server's defaults.
    pub features: Vec<String>,
    pub description: Option<String>,
    pub placement: Placement,
    /// Warnings the caller has decided are harmless for this domain (`--skip-warnings`).
    pub skip_warnings: bool,
}

/// Where a new domain sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    TopLevel,
    SubServerOf(String),
    AliasOf(String),
}

/// What `modify-domain` changes; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct DomainChange {
    /// Applies the plan's limits too, not just the label.
    pub apply_plan: Option<String>,
    pub password: Option<SecretString>,
    /// Disk quota in blocks (1 KiB on most systems).
    pub quota_blocks: Option<u64>,
    pub description: Option<String>,
}

/// Records of a list answer: JSON/XML carry them; text needs reading.
pub(crate) fn records(reply: Reply) -> Vec<Record> {
    if reply.records.is_empty() && !reply.output.is_empty() {
        text_records(&reply.output)
    } else {
        reply.records
    }
}

/// Treats "already in that state" as done: repeats of enable/disable are no-ops.
pub(crate) fn idempotent(result: Result<Reply, VirtualminError>) -> Result<(), VirtualminError> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.kind == ErrorKind::AlreadyInState => Ok(()),
        Err(e) => Err(e),
    }
}

// The calls the break-glass path makes over SSH too (`crate::ssh`): one definition each.

pub(crate) fn list_domains_call() -> Call {
    Call::new("list-domains")
        .flag("multiline")
        .class(OperationClass::DomainSync)
}

pub(crate) fn enable_domain_call(domain: &str) -> Call {
    Call::new("enable-domain")
        .class(OperationClass::Provisioning)
        .arg("domain", domain)
        .retry_safe()
}

pub(crate) fn disable_domain_call(domain: &str, why: Option<&str>) -> Call {
    // Like a create, it visits every feature and reloads services: it gets as long.
    let call = Call::new("disable-domain")
        .class(OperationClass::Provisioning)
        .arg("domain", domain)
        .retry_safe();
    match why {
        Some(why) => call.arg("why", why),
        None => call,
    }
}

/// The server's own description (versions, status): the cheap health check, tried once.
pub(crate) fn info_call() -> Call {
    Call::new("info")
        .class(OperationClass::HealthCheck)
        .single_try()
}

impl VirtualminClient {
    /// Every domain on the server, sub-servers and aliases included. A failure is an error,
    /// never an empty list: a failed observation must not look like an empty server.
    pub async fn list_domains(&self) -> Result<Vec<DomainInfo>, VirtualminError> {
        let reply = self.call(&list_domains_call()).await?;
        Ok(records(reply)
            .into_iter()
            .map(DomainInfo::from_record)
            .collect())
    }

    /// One domain, or `None` when the server says exactly that it does not exist.
    pub async fn get_domain(&self, domain: &str) -> Result<Option<DomainInfo>, VirtualminError> {
        let call = Call::new("list-domains")
            .arg("domain", domain)
            .flag("multiline");
        match self.call(&call).await {
            Ok(reply) => Ok(records(reply)
                .into_iter()
                .map(DomainInfo::from_record)
                .find(|d| d.domain == domain)),
            Err(e)
                if e.kind == ErrorKind::NotFound
                    && e.message.contains(&format!("Virtual server {domain} ")) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Creates a domain. Not idempotent on the server: callers check with `get_domain` first
    /// and treat `AlreadyExists` as "look again".
    pub async fn create_domain(&self, new: &NewDomain) -> Result<String, VirtualminError> {
        let mut call = Call::new("create-domain")
            .class(OperationClass::Provisioning)
            .arg("domain", &new.domain)
            .secret("pass", new.password.clone());
        if let Some(user) = &new.unix_user {
            call = call.arg("user", user);
        }
        if let Some(plan) = &new.plan {
            call = call.arg("plan", plan).flag("limits-from-plan");
        }
        if let Some(template) = &new.template {
            call = call.arg("template", template);
        }
        if new.features.is_empty() {
            call = call.flag("default-features");
        }
        for feature in &new.features {
            call = call.flag(feature);
        }
        if let Some(description) = &new.description {
            call = call.arg("desc", description);
        }
        call = match &new.placement {
            Placement::TopLevel => call,
            Placement::SubServerOf(parent) => call.arg("parent", parent),
            Placement::AliasOf(target) => call.arg("alias", target),
        };
        if new.skip_warnings {
            call = call.flag("skip-warnings");
        }
        Ok(self.call(&call).await?.output)
    }

    /// Creates `alias` serving the site and mail of `target` (`create-domain --alias`, with the
    /// features the server gives an alias by default). Not idempotent: callers list first.
    pub async fn create_alias(
        &self,
        alias: &str,
        target: &str,
        description: &str,
    ) -> Result<(), VirtualminError> {
        let call = Call::new("create-domain")
            .class(OperationClass::Provisioning)
            .arg("domain", alias)
            .arg("alias", target)
            .arg("desc", description)
            .flag("default-features");
        self.call(&call).await.map(|_| ())
    }

    /// Creates `domain` as a sub-server of `parent` with `features` (`create-domain --parent`;
    /// never `--unix`: it shares its parent's user). Not idempotent: callers list first.
    pub async fn create_subserver(
        &self,
        domain: &str,
        parent: &str,
        features: &[String],
        description: &str,
    ) -> Result<(), VirtualminError> {
        let mut call = Call::new("create-domain")
            .class(OperationClass::Provisioning)
            .arg("domain", domain)
            .arg("parent", parent)
            .arg("desc", description);
        for feature in features {
            call = call.flag(feature);
        }
        self.call(&call).await.map(|_| ())
    }

    /// The sub-servers of `parent` (`list-domains --parent --no-alias`: aliases have a parent
    /// too).
    pub async fn subservers_of(&self, parent: &str) -> Result<Vec<String>, VirtualminError> {
        let call = Call::new("list-domains")
            .arg("parent", parent)
            .flag("no-alias")
            .flag("name-only");
        Ok(records(self.call(&call).await?)
            .into_iter()
            .map(|r| r.name)
            .collect())
    }

    /// The domains the server keeps as aliases of `target` (`list-domains --alias`).
    pub async fn aliases_of(&self, target: &str) -> Result<Vec<String>, VirtualminError> {
        let call = Call::new("list-domains")
            .arg("alias", target)
            .flag("name-only");
        Ok(records(self.call(&call).await?)
            .into_iter()
            .map(|r| r.name)
            .collect())
    }

    pub async fn delete_domain(&self, domain: &str) -> Result<(), VirtualminError> {
        let call = Call::new("delete-domain")
            .class(OperationClass::Provisioning)
            .arg("domain", domain);
        self.call(&call).await.map(|_| ())
    }

    /// Enables a domain; enabling an enabled one succeeds.
    pub async fn enable_domain(&self, domain: &str) -> Result<(), VirtualminError> {
        idempotent(self.call(&enable_domain_call(domain)).await)
    }

    /// Disables a domain with the reason shown to its owner; disabling a disabled one succeeds.
    pub async fn disable_domain(
        &self,
        domain: &str,
        why: Option<&str>,
    ) -> Result<(), VirtualminError> {
        idempotent(self.call(&disable_domain_call(domain, why)).await)
    }

    pub async fn modify_domain(
        &self,
        domain: &str,
        change: &DomainChange,
    ) -> Result<(), VirtualminError> {
        let mut call = Call::new("modify-domain")
            .class(OperationClass::Provisioning)
            .arg("domain", domain);
        if let Some(plan) = &change.apply_plan {
            call = call.arg("apply-plan", plan);
        }
        if let Some(password) = &change.password {
            call = call.secret("pass", password.clone());
        }
        if let Some(quota) = change.quota_blocks {
            call = call.arg("quota", quota.to_string());
        }
        if let Some(description) = &change.description {
            call = call.arg("desc", description);
        }
        self.call(&call).await.map(|_| ())
    }

    /// Turns features on for an existing domain (`enable-feature --domain D --mysql …`).
    pub async fn enable_features(
        &self,
        domain: &str,
        features: &[String],
    ) -> Result<(), VirtualminError> {
        let mut call = Call::new("enable-feature")
            .class(OperationClass::Provisioning)
            .arg("domain", domain);
        for feature in features {
            call = call.flag(feature);
        }
        self.call(&call).await.map(|_| ())
    }

    pub async fn list_plans(&self) -> Result<Vec<Record>, VirtualminError> {
        Ok(records(
            self.call(&Call::new("list-plans").flag("multiline"))
                .await?,
        ))
    }

    pub async fn list_templates(&self) -> Result<Vec<Record>, VirtualminError> {
        Ok(records(
            self.call(&Call::new("list-templates").flag("multiline"))
                .await?,
        ))
    }

    /// The server's own description (versions, status): the cheap health check, tried once.
    pub async fn info(&self) -> Result<Reply, VirtualminError> {
        self.call(&info_call()).await
    }

    /// Creates a mailbox, with a quota (MB) when given: a server without quotas takes it
    /// and keeps none.
    pub async fn create_mailbox(
        &self,
        domain: &str,
        user: &str,
        password: MailboxPassword,
        real_name: Option<&str>,
        quota_mb: Option<u64>,
    ) -> Result<(), VirtualminError> {
        let call = Call::new("create-user")
            .arg("domain", domain)
            .arg("user", user);
        let mut call = match password {
            MailboxPassword::Plain(password) => call.secret("pass", password),
            MailboxPassword::Hashed(hash) => call.secret("encpass", hash.0),
        };
        if let Some(real) = real_name {
            call = call.arg("real", real);
        }
        if let Some(mb) = quota_mb {
            call = call.arg("quota", quota_blocks(mb));
        }
        self.call(&call).await.map(|_| ())
    }

    /// Sets a mailbox's quota (MB; `None`: none). Only a server that keeps quotas takes it:
    /// one without refuses the flag.
    pub async fn set_mailbox_quota(
        &self,
        domain: &str,
        user: &str,
        quota_mb: Option<u64>,
    ) -> Result<(), VirtualminError> {
        let quota = quota_mb.map_or_else(|| "UNLIMITED".to_owned(), quota_blocks);
        let call = Call::new("modify-user")
            .arg("domain", domain)
            .arg("user", user)
            .arg("quota", quota);
        self.call(&call).await.map(|_| ())
    }

    /// Changes a mailbox's real name, its password, or both (`modify-user`).
    pub async fn modify_mailbox(
        &self,
        domain: &str,
        user: &str,
        real_name: Option<&str>,
        password: Option<SecretString>,
    ) -> Result<(), VirtualminError> {
        let mut call = Call::new("modify-user")
            .arg("domain", domain)
            .arg("user", user);
        if let Some(real) = real_name {
            call = call.arg("real", real);
        }
        if let Some(password) = password {
            call = call.secret("pass", password);
        }
        self.call(&call).await.map(|_| ())
    }

    /// The domain's mailboxes, typed: its users that receive mail (the server leaves its
    /// owner out of the listing).
    pub async fn mailboxes(&self, domain: &str) -> Result<Vec<DomainUser>, VirtualminError> {
        Ok(self
            .list_mailboxes(domain)
            .await?
            .iter()
            .filter_map(DomainUser::from_record)
            .filter(DomainUser::is_mailbox)
            .collect())
    }

    pub async fn delete_mailbox(&self, domain: &str, user: &str) -> Result<(), VirtualminError> {
        self.call(
            &Call::new("delete-user")
                .arg("domain", domain)
                .arg("user", user),
        )
        .await
        .map(|_| ())
    }

    pub async fn list_mailboxes(&self, domain: &str) -> Result<Vec<Record>, VirtualminError> {
        Ok(records(
            self.call(
                &Call::new("list-users")
                    .arg("domain", domain)
                    .flag("multiline"),
            )
            .await?,
        ))
    }

    /// Every user of every domain on the server, in one call (usage counts mailboxes from it).
    pub async fn list_all_users(&self) -> Result<Vec<DomainUser>, VirtualminError> {
        let call = Call::new("list-users")
            .flag("all-domains")
            .flag("multiline")
            .class(OperationClass::UsageSync);
        let reply = self.call(&call).await?;
        Ok(records(reply)
            .iter()
            .filter_map(DomainUser::from_record)
            .collect())
    }

    pub async fn create_database(
        &self,
        domain: &str,
        name: &str,
        kind: &str,
    ) -> Result<(), VirtualminError> {
        let call = Call::new("create-database")
            .arg("domain", domain)
            .arg("name", name)
            .arg("type", kind);
        self.call(&call).await.map(|_| ())
    }

    /// Deletes a database and its tables (`delete-database`).
    pub async fn delete_database(
        &self,
        domain: &str,
        name: &str,
        kind: &str,
    ) -> Result<(), VirtualminError> {
        let call = Call::new("delete-database")
            .arg("domain", domain)
            .arg("name", name)
            .arg("type", kind);
        self.call(&call).await.map(|_| ())
    }

    /// The domain's databases, typed (the one the server made with the domain among them).
    pub async fn databases(&self, domain: &str) -> Result<Vec<DomainDatabase>, VirtualminError> {
        Ok(self
            .list_databases(domain)
            .await?
            .iter()
            .map(DomainDatabase::from_record)
            .collect())
    }

    pub async fn list_databases(&self, domain: &str) -> Result<Vec<Record>, VirtualminError> {
        Ok(records(
            self.call(
                &Call::new("list-databases")
                    .arg("domain", domain)
                    .flag("multiline"),
            )
            .await?,
        ))
    }

    /// Requests a Let's Encrypt certificate for the domain's web names, installs it, and has
    /// the server renew it. Validated over the web only: without `--web` a failed web
    /// validation is followed by a DNS one, a second failure for Let's Encrypt to count. A
    /// refusal the program itself reports is `program_failed`: it may have cost one.
    pub async fn generate_letsencrypt_cert(&self, domain: &str) -> Result<(), VirtualminError> {
        let call = Call::new("generate-letsencrypt-cert")
            .class(OperationClass::Provisioning)
            .arg("domain", domain)
            .flag("renew")
            .flag("web");
        self.call(&call).await.map(drop)
    }

    /// Backs the domain up with its sub-servers and aliases (`--parent`; a domain's own
    /// backup leaves its sub-servers' directories out), all features, to an archive: a path on
    /// the server (its directory made when missing) or on an SSH host (`login` is how the
    /// server's `scp` logs in there; the server makes no directory there). The answer is the
    /// server's log of the backup (its last line gives the archive's size).
    pub async fn backup_domain(
        &self,
        domain: &str,
        archive: &BackupLocation,
        login: Option<&SshLogin>,
    ) -> Result<String, VirtualminError> {
        let call = Call::new("backup-domain")
            .class(OperationClass::Backup)
            .arg("domain", domain);
        let call = with_archive(call, "dest", archive, login)?
            .flag("parent")
            .flag("all-features");
        // `--mkdir` is for local backups only: the program refuses it with an SSH URL.
        let call = match archive {
            BackupLocation::ServerDirectory(_) => call.flag("mkdir"),
            BackupLocation::Ssh(_) => call,
        };
        Ok(self.call(&call).await?.output)
    }

    /// Restores `domains` (a domain first, then its sub-servers), all features, from an
    /// archive the server can read: each re-created when the server lacks it, its files, mail
    /// and databases replaced when it has it (files made since the backup deleted: `dir
    /// delete`); one the archive lacks is passed over. The answer is the server's log of the
    /// restore.
    pub async fn restore_domain(
        &self,
        archive: &BackupLocation,
        login: Option<&SshLogin>,
        domains: &[&str],
    ) -> Result<String, VirtualminError> {
        let mut call = with_archive(
            Call::new("restore-domain").class(OperationClass::Backup),
            "source",
            archive,
            login,
        )?;
        for domain in domains {
            call = call.arg("domain", *domain);
        }
        let call = call.flag("all-features").arg("option", "dir delete 1");
        Ok(self.call(&call).await?.output)
    }

    /// Deletes a backup archive the server wrote (and its `.info`/`.dom` companions); one
    /// already gone is no error.
    pub async fn delete_backup(
        &self,
        archive: &BackupLocation,
        login: Option<&SshLogin>,
    ) -> Result<(), VirtualminError> {
        let call = with_archive(
            Call::new("delete-backup").class(OperationClass::Backup),
            "dest",
            archive,
            login,
        )?;
        let output = self.call(&call).await?.output;
        // The program reports a failed deletion in its output and still exits with success.
        let Some((_, after)) = output.split_once(".. failed : ") else {
            return Ok(());
        };
        // The cause, and for an SSH host the lines ssh printed after it (through a terminal:
        // carriage returns and its password prompts left out).
        let cause = after
            .split(['\r', '\n'])
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.ends_with("password:"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut error = VirtualminError::new(classify_failure(&cause), cause);
        error.program_failed = true;
        error.output = Some(output);
        Err(error)
    }

    /// A one-time login URL for the domain's owner, valid for `lifetime_seconds`. A secret:
    /// the call's record and logs never hold it.
    pub async fn create_login_link(
        &self,
        domain: &str,
        lifetime_seconds: u32,
    ) -> Result<SecretString, VirtualminError> {
        let call = Call::new("create-login-link")
            .arg("domain", domain)
            .arg("lifetime", lifetime_seconds.to_string());
        let reply = self.call(&call).await?;
        Ok(SecretString::from(reply.output.trim().to_owned()))
    }
}

/// How a server's `scp` logs in to an SSH host that keeps archives.
#[derive(Debug, Clone)]
pub enum SshLogin {
    /// The host user's password: sent with the call, kept out of its record and answers.
    Password(SecretString),
    /// A private key file on the server (`scp -i`): only its path is sent.
    KeyFile(SshKeyFile),
}

/// The archive as the backup programs take it: a path, or for an SSH host
/// `ssh://user:password@host:port:/path`, or with a key file on the server
/// `ssh://user:|path|to|key@host:port:/path` (Virtualmin's own form: a login starting with
/// `|` is a key file's path, its `/` written as `|`).
fn with_archive(
    call: Call,
    name: &str,
    archive: &BackupLocation,
    login: Option<&SshLogin>,
) -> Result<Call, VirtualminError> {
    let BackupLocation::Ssh(ssh) = archive else {
        return Ok(call.arg(name, archive.to_string()));
    };
    let invalid = |why: &str| {
        Err(VirtualminError::new(
            ErrorKind::Invalid,
            format!("{archive}: {why}"),
        ))
    };
    let password = match login {
        None => return invalid("the password or key file of the SSH host's user is needed"),
        Some(SshLogin::KeyFile(key)) => {
            let sent = format!(
                "ssh://{}:{}@{}:{}:{}",
                ssh.user,
                key.as_str().replace('/', "|"),
                ssh.host_for_url(),
                ssh.port,
                ssh.path
            );
            return Ok(call.arg(name, sent));
        }
        Some(SshLogin::Password(password)) => password,
    };
    let secret = password.expose_secret();
    if secret.is_empty() || secret.starts_with('|') {
        return invalid(
            "the SSH password is empty or starts with '|' (which the server reads as a key \
             file's path)",
        );
    }
    let sent = format!(
        "ssh://{}:{secret}@{}:{}:{}",
        ssh.user,
        ssh.host_for_url(),
        ssh.port,
        ssh.path
    );
    Ok(call.masked(name, sent.into(), archive.to_string(), password.clone()))
}

/// A quota in MB as the server's programs take it: 1 kB blocks.
fn quota_blocks(mb: u64) -> String {
    mb.saturating_mul(1024).to_string()
}

/// A new mailbox's password: in clear, or as the server keeps it (a hash read from another
/// server, so the customer's password keeps working; only a master administrator may send it).
#[derive(Debug, Clone)]
pub enum MailboxPassword {
    Plain(SecretString),
    Hashed(PasswordHash),
}
