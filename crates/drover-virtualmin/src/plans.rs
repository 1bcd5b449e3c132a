//! Account plans are Virtualmin's own objects: an account is created `--plan NAME
//! --limits-from-plan`, so the plan must exist on its server with drover's limits. drover owns
//! them: `ensure_plan` reads the server's plans once and creates or corrects the one it needs.

use crate::client::VirtualminClient;
use crate::error::VirtualminError;
use crate::reply::Record;
use crate::request::{Call, OperationClass};

/// A plan as drover puts it on a server. `None` is unlimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerPlan {
    pub name: String,
    /// Disk quota in 1 KiB blocks.
    pub quota_blocks: Option<u64>,
    pub max_mailboxes: Option<u64>,
    pub max_databases: Option<u64>,
    /// Virtual servers the account's owner may create (sub-servers).
    pub max_domains: Option<u64>,
    pub max_bandwidth_bytes: Option<u64>,
    /// The features accounts on the plan may have; empty leaves it to the server
    /// ("Automatic").
    pub features: Vec<String>,
}

/// What `ensure_plan` had to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanSync {
    Unchanged,
    Created,
    Updated,
}

/// How a server carries a plan drover defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanPresence {
    Missing,
    /// There, with other limits or features (changed by hand, or drover's changed since).
    Differs,
    Matches,
}

impl ServerPlan {
    /// How the server's plans (a `list-plans --multiline` listing) carry this one. Virtualmin
    /// compares plan names without case.
    pub fn presence(&self, plans: &[Record]) -> PlanPresence {
        match plans
            .iter()
            .find(|p| plan_name(p).is_some_and(|n| n.eq_ignore_ascii_case(&self.name)))
        {
            None => PlanPresence::Missing,
            Some(found) if self.matches(found) => PlanPresence::Matches,
            Some(_) => PlanPresence::Differs,
        }
    }

    /// Whether the server's record of the plan (a `list-plans --multiline` entry) carries
    /// these limits and features.
    pub fn matches(&self, record: &Record) -> bool {
        let limit = |key: &str| match record.get(key).map(str::trim) {
            None | Some("Unlimited") => None,
            Some(n) => Some(n.parse::<u64>().ok()),
        };
        // A quota of 0 is Virtualmin's "unlimited" too.
        let quota = match record.get("server_block_quota").map(str::trim) {
            None | Some("Unlimited" | "0") => None,
            Some(n) => Some(n.parse::<u64>().ok()),
        };
        let mut features: Vec<&str> = match record.get("allowed_features").map(str::trim) {
            None | Some("Automatic") => Vec::new(),
            Some(list) => list.split_whitespace().collect(),
        };
        features.sort_unstable();
        let mut wanted: Vec<&str> = self.features.iter().map(String::as_str).collect();
        wanted.sort_unstable();
        quota == self.quota_blocks.map(Some)
            && limit("maximum_mailbox") == self.max_mailboxes.map(Some)
            && limit("maximum_dbs") == self.max_databases.map(Some)
            && limit("maximum_doms") == self.max_domains.map(Some)
            && limit("maximum_bw") == self.max_bandwidth_bytes.map(Some)
            && features == wanted
    }

    /// `create-plan` or `modify-plan` with every limit stated, so the result does not depend
    /// on what the server had.
    fn call(&self, program: &'static str) -> Call {
        let creating = program == "create-plan";
        let mut call = Call::new(program)
            .class(OperationClass::Write)
            .arg("name", &self.name);
        call = match self.quota_blocks {
            Some(blocks) => call.arg("quota", blocks.to_string()),
            None if creating => call,
            None => call.flag("no-quota"),
        };
        for (max, value) in [
            ("mailbox", self.max_mailboxes),
            ("dbs", self.max_databases),
            ("doms", self.max_domains),
            ("bw", self.max_bandwidth_bytes),
        ] {
            call = match value {
                Some(n) => call.arg(&format!("max-{max}"), n.to_string()),
                None if creating => call,
                None => call.flag(&format!("no-max-{max}")),
            };
        }
        if !self.features.is_empty() {
            call = call.arg("features", self.features.join(" "));
        } else if !creating {
            call = call.flag("auto-features");
        }
        if !creating {
            // Accounts already on the plan get its new limits too.
            call = call.flag("apply");
        }
        call
    }
}

/// How long a plan this client made match is trusted without reading the server's plans again:
/// creating many accounts on one plan reads them once, and a plan changed by hand on the server
/// is corrected within this time.
const PLAN_CHECKED_FOR: std::time::Duration = std::time::Duration::from_secs(600);

impl VirtualminClient {
    /// Makes the server's plan match `plan`: one `list-plans`, then a create or a modify only
    /// when it is missing or differs. Virtualmin compares plan names without case. A plan
    /// checked in the last minutes is not read again.
    pub async fn ensure_plan(&self, plan: &ServerPlan) -> Result<PlanSync, VirtualminError> {
        let _one_at_a_time = self.plan_sync.lock().await;
        if self.plan_checked(plan) {
            return Ok(PlanSync::Unchanged);
        }
        let synced = match self.sync_plan(plan).await {
            // Another process created it between our read and our create: read again.
            Err(e) if e.kind == crate::ErrorKind::AlreadyExists => self.sync_plan(plan).await?,
            other => other?,
        };
        self.remember_plan(plan);
        Ok(synced)
    }

    /// Forgets that plans were checked: the server said one is missing.
    pub fn forget_plans(&self) {
        self.checked_plans().clear();
    }

    fn checked_plans(&self) -> std::sync::MutexGuard<'_, Vec<(ServerPlan, std::time::Instant)>> {
        self.plans_checked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn plan_checked(&self, plan: &ServerPlan) -> bool {
        self.checked_plans()
            .iter()
            .any(|(p, at)| p == plan && at.elapsed() < PLAN_CHECKED_FOR)
    }

    fn remember_plan(&self, plan: &ServerPlan) {
        let mut checked = self.checked_plans();
        checked.retain(|(p, _)| p.name != plan.name);
        checked.push((plan.clone(), std::time::Instant::now()));
    }

    async fn sync_plan(&self, plan: &ServerPlan) -> Result<PlanSync, VirtualminError> {
        let plans = self.list_plans().await?;
        match plan.presence(&plans) {
            PlanPresence::Missing => {
                self.call(&plan.call("create-plan")).await?;
                Ok(PlanSync::Created)
            }
            PlanPresence::Matches => Ok(PlanSync::Unchanged),
            PlanPresence::Differs => {
                self.call(&plan.call("modify-plan")).await?;
                Ok(PlanSync::Updated)
            }
        }
    }
}

/// A `list-plans` entry's plan name: its `name` field (the entry's own name is the plan id).
fn plan_name(record: &Record) -> Option<&str> {
    record.get("name")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &[(&str, &str)]) -> Record {
        let mut r = Record::new("1");
        for (k, v) in fields {
            r.push(k, v);
        }
        r
    }

    fn plan() -> ServerPlan {
        ServerPlan {
            name: "Web 10GB".into(),
            quota_blocks: Some(10_485_760),
            max_mailboxes: Some(50),
            max_databases: None,
            max_domains: None,
            max_bandwidth_bytes: None,
            features: vec!["unix".into(), "dir".into(), "web".into()],
        }
    }

    #[test]
    fn a_plan_matches_the_servers_record_of_it_and_nothing_else() {
        let same = record(&[
            ("name", "Web 10GB"),
            ("server_block_quota", "10485760"),
            ("maximum_mailbox", "50"),
            ("maximum_dbs", "Unlimited"),
            ("maximum_doms", "Unlimited"),
            ("maximum_bw", "Unlimited"),
            ("allowed_features", "web unix dir"),
        ]);
        assert!(plan().matches(&same));
        for (key, other) in [
            ("server_block_quota", "Unlimited"),
            ("maximum_mailbox", "Unlimited"),
            ("maximum_dbs", "0"),
            ("allowed_features", "Automatic"),
            ("maximum_bw", "1000"),
        ] {
            let mut fields: Vec<(&str, &str)> = same.fields().collect();
            for f in &mut fields {
                if f.0 == key {
                    f.1 = other;
                }
            }
            assert!(!plan().matches(&record(&fields)), "{key}={other}");
        }
        let unlimited = ServerPlan {
            quota_blocks: None,
            max_mailboxes: None,
            features: vec![],
            ..plan()
        };
        assert!(unlimited.matches(&record(&[
            ("server_block_quota", "Unlimited"),
            ("maximum_mailbox", "Unlimited"),
            ("allowed_features", "Automatic"),
        ])));
    }

    #[test]
    fn a_modify_states_every_limit_and_applies_to_accounts() {
        let modify = plan().call("modify-plan").to_string();
        assert_eq!(
            modify,
            "modify-plan --name \"Web 10GB\" --quota \"10485760\" --max-mailbox \"50\" \
             --no-max-dbs --no-max-doms --no-max-bw --features \"unix dir web\" --apply"
        );
        let create = plan().call("create-plan").to_string();
        assert_eq!(
            create,
            "create-plan --name \"Web 10GB\" --quota \"10485760\" --max-mailbox \"50\" \
             --features \"unix dir web\""
        );
    }
}
