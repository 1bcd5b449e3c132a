//! Account plans, Virtualmin's own objects: `create-plan`, `modify-plan`, `delete-plan` and
//! `list-plans`, with the parameters, texts and listing of Virtualmin 8.1 (`create-plan.pl`,
//! `modify-plan.pl`, `delete-plan.pl`, `list-plans.pl`; see the captures).

use super::programs::{Params, State, nice_size};
use super::render::{Answer, Entry, table};

/// The limits a plan can set, in `list-plans` order (`--max-mailbox`, …).
pub const PLAN_MAXES: &[&str] = &[
    "mailbox",
    "alias",
    "dbs",
    "doms",
    "aliasdoms",
    "realdoms",
    "bw",
];

/// Features a plan may name (`--features`): Virtualmin's own, then `virt`.
fn plan_feature(name: &str) -> bool {
    name == "virt" || super::programs::KNOWN_FEATURES.contains(&name)
}

/// An account plan on the simulated server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimPlan {
    pub id: u64,
    pub name: String,
    /// Disk quota in 1 KiB blocks (`--quota`); `None` is unlimited.
    pub quota_blocks: Option<u64>,
    /// The administrator's own quota in blocks (`--admin-quota`).
    pub admin_quota_blocks: Option<u64>,
    /// `(limit, value)` for the `--max-*` limits set, e.g. `("mailbox", 10)`.
    pub limits: Vec<(String, u64)>,
    /// Allowed features: `None` is "Automatic" (the server's), `Some(empty)` is "none".
    pub features: Option<Vec<String>>,
}

impl SimPlan {
    /// A plan with that name and no limits, as `create-plan --name NAME` makes it.
    pub fn new(name: &str) -> Self {
        Self {
            id: 0,
            name: name.to_owned(),
            quota_blocks: None,
            admin_quota_blocks: None,
            limits: Vec::new(),
            features: None,
        }
    }

    /// Virtualmin's own "Default Plan" as a fresh install has it.
    pub fn default_plan() -> Self {
        Self {
            id: 0,
            quota_blocks: Some(2_097_152),
            admin_quota_blocks: Some(2_097_152),
            limits: vec![("doms".to_owned(), 0)],
            ..Self::new("Default Plan")
        }
    }

    pub fn limit(&self, name: &str) -> Option<u64> {
        self.limits.iter().find(|(l, _)| l == name).map(|(_, v)| *v)
    }

    fn set_limit(&mut self, name: &str, value: Option<u64>) {
        self.limits.retain(|(l, _)| l != name);
        if let Some(value) = value {
            self.limits.push((name.to_owned(), value));
        }
    }

    fn entry(&self) -> Entry {
        let mut f: Vec<(String, String)> = Vec::new();
        let mut add = |label: &str, value: String| f.push((label.to_owned(), value));
        add("Name", self.name.clone());
        let blocks = |b: Option<u64>| b.filter(|b| *b > 0);
        add(
            "Server block quota",
            blocks(self.quota_blocks).map_or("Unlimited".to_owned(), |b| b.to_string()),
        );
        if let Some(b) = blocks(self.quota_blocks) {
            add("Server quota", nice_size(b * 1024));
        }
        add(
            "Administrator block quota",
            blocks(self.admin_quota_blocks).map_or("Unlimited".to_owned(), |b| b.to_string()),
        );
        if let Some(b) = blocks(self.admin_quota_blocks) {
            add("Administrator quota", nice_size(b * 1024));
        }
        for l in PLAN_MAXES {
            add(
                &format!("Maximum {l}"),
                self.limit(l)
                    .map_or("Unlimited".to_owned(), |v| v.to_string()),
            );
        }
        add("Can choose database names", "Yes".to_owned());
        add("Can rename domains", "Yes".to_owned());
        add("Can migrate backups", "No".to_owned());
        add("Can create sub-servers under any domain", "Yes".to_owned());
        add(
            "Can create sub-servers under other domains",
            "No".to_owned(),
        );
        add(
            "Allowed features",
            match &self.features {
                None => "Automatic".to_owned(),
                Some(f) if f.is_empty() => "none".to_owned(),
                Some(f) => f.join(" "),
            },
        );
        add("Edit capabilities", "Automatic".to_owned());
        add("Allowed scripts", "All".to_owned());
        add("Resellers", "All".to_owned());
        Entry {
            name: self.id.to_string(),
            fields: f,
        }
    }
}

impl From<&str> for SimPlan {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}

impl From<String> for SimPlan {
    fn from(name: String) -> Self {
        Self::new(&name)
    }
}

const CREATE_USAGE: &str = "Creates a new Virtualmin account plan with the given limits.

virtualmin create-plan --name plan-name
                      [--owner reseller]
                      [--quota blocks]
                      [--admin-quota blocks]
                      [--max-mailbox limit]
                      [--max-alias limit]
                      [--max-dbs limit]
                      [--max-doms limit]
                      [--max-aliasdoms limit]
                      [--max-realdoms limit]
                      [--max-bw limit]
                      [--nodbname]
                      [--norename]
                      [--forceunder]
                      [--safeunder]
                      [--migrate]
                      [--features \"web dns mail ...\" | --no-features]
                      [--capabilities \"domain users aliases ...\"]
                      [--scripts \"name name ...\"]
";

const MODIFY_USAGE: &str = "Updates an existing Virtualmin account plan with the given limits.

virtualmin modify-plan --name plan-name | --id number
                      [--new-name plan-name]
                      [--owner reseller | --no-owner]
                      [--quota blocks | --no-quota]
                      [--admin-quota blocks | --no-admin-quota]
                      [--max-mailbox limit | --no-max-mailbox]
                      [--max-alias limit | --no-max-alias]
                      [--max-dbs limit | --no-max-dbs]
                      [--max-doms limit | --no-max-doms]
                      [--max-aliasdoms limit | --no-max-aliasdoms]
                      [--max-realdoms limit | --no-max-realdoms]
                      [--max-bw limit | --no-max-bw]
                      [--nodbname | --no-nodbname]
                      [--norename | --no-norename]
                      [--forceunder | --no-forceunder]
                      [--safeunder | --no-safeunder]
                      [--migrate | --no-migrate]
                      [--features \"web dns mail ...\" |
                       --auto-features | --no-features]
                      [--capabilities \"domain users aliases ...\" |
                       --auto-capabilities]
                      [--apply]
";

const DELETE_USAGE: &str = "Deletes an existing Virtualmin account plan.

virtualmin delete-plan --name plan-name | --id plan-id
";

const LIST_USAGE: &str = "Lists the available account plans for virtual servers.

virtualmin list-plans [--multiline | --json | --xml]
                      [--id number | --name \"plan name\"]
";

fn refuse(usage: &str, message: impl Into<String>) -> Answer {
    Answer::Failure {
        message: message.into(),
        usage: usage.to_owned(),
    }
}

const RESTRICTIONS: &[&str] = &["nodbname", "norename", "forceunder", "safeunder", "migrate"];

/// One parameter of create-plan or modify-plan applied to a plan being built; `Err` is the
/// program's refusal. `modify` allows the `--no-…`/`--auto-…` forms.
fn apply(plan: &mut SimPlan, name: &str, value: &str, usage: &str) -> Result<bool, Answer> {
    let number = |what: &str| -> Result<u64, Answer> {
        value
            .parse::<u64>()
            .ok()
            .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| refuse(usage, format!("--{name} must be followed by {what}")))
    };
    match name {
        "quota" => plan.quota_blocks = Some(number("a quota in blocks")?),
        "admin-quota" => plan.admin_quota_blocks = Some(number("a quota in blocks")?),
        "features" => {
            let features: Vec<String> = value.split_whitespace().map(str::to_owned).collect();
            if let Some(unknown) = features.iter().find(|f| !plan_feature(f)) {
                return Err(refuse(
                    usage,
                    format!(
                        "Unknown feature {unknown} - allowed options are : {} virt",
                        super::programs::KNOWN_FEATURES.join(" ")
                    ),
                ));
            }
            plan.features = Some(features);
        }
        "no-features" => plan.features = Some(Vec::new()),
        n if n
            .strip_prefix("max-")
            .is_some_and(|l| PLAN_MAXES.contains(&l)) =>
        {
            let limit = number("a numeric limit")?;
            plan.set_limit(&n["max-".len()..], Some(limit));
        }
        n if RESTRICTIONS.contains(&n) => {}
        _ => return Ok(false),
    }
    Ok(true)
}

impl State {
    fn plan_index(&self, params: &Params, usage: &str) -> Result<usize, Answer> {
        if let Some(id) = params.get("id") {
            return self
                .plans
                .iter()
                .position(|p| p.id.to_string() == id)
                .ok_or_else(|| refuse(usage, format!("No plan with ID {id} was found")));
        }
        if let Some(name) = params.get("name") {
            return self
                .plans
                .iter()
                .position(|p| p.name == name)
                .ok_or_else(|| refuse(usage, format!("No plan with name {name} was found")));
        }
        Err(refuse(
            usage,
            "Either the --id or --name parameter must be given",
        ))
    }

    /// A new plan id, like Virtualmin's time-based ones.
    pub(super) fn new_plan_id(&mut self) -> u64 {
        self.next_id += 4_603;
        self.next_id / 10
    }

    /// Gives seeded plans (pushed by name) ids, once.
    pub(super) fn number_plans(&mut self) {
        let unnumbered: Vec<usize> = (0..self.plans.len())
            .filter(|i| self.plans[*i].id == 0 && self.plans[*i].name != "Default Plan")
            .collect();
        for i in unnumbered {
            let id = self.new_plan_id();
            self.plans[i].id = id;
        }
    }

    /// Plans as `list_plans` returns them: by name, without regard to case.
    pub(super) fn sorted_plans(&self) -> Vec<&SimPlan> {
        let mut plans: Vec<&SimPlan> = self.plans.iter().collect();
        plans.sort_by_key(|p| p.name.to_lowercase());
        plans
    }

    pub(super) fn plan_named(&self, name_or_id: &str) -> Option<&SimPlan> {
        self.plans
            .iter()
            .find(|p| p.name == name_or_id || p.id.to_string() == name_or_id)
    }

    pub(super) fn create_plan(&mut self, params: &Params) -> Answer {
        let mut plan = SimPlan::new("");
        for (name, value) in &params.0 {
            match name.as_str() {
                "json" | "xml" | "program" | "multiline" => {}
                "name" => plan.name = value.clone(),
                other => match apply(&mut plan, other, value, CREATE_USAGE) {
                    Ok(true) => {}
                    Ok(false) => {
                        return refuse(CREATE_USAGE, format!("Unknown parameter --{other}"));
                    }
                    Err(refusal) => return refusal,
                },
            }
        }
        if plan.name.is_empty() {
            return refuse(CREATE_USAGE, "Missing --name flag");
        }
        if self
            .plans
            .iter()
            .any(|p| p.name.to_lowercase() == plan.name.to_lowercase())
        {
            return refuse(
                CREATE_USAGE,
                format!("A plan name {} already exists", plan.name),
            );
        }
        plan.id = self.new_plan_id();
        let output = format!("Created plan {} with ID {}\n", plan.name, plan.id);
        self.plans.push(plan);
        Answer::Output(output)
    }

    pub(super) fn modify_plan(&mut self, params: &Params) -> Answer {
        let mut change = SimPlan::new("");
        let mut new_name = None;
        let mut cleared: Vec<&str> = Vec::new();
        let mut auto_features = false;
        for (name, value) in &params.0 {
            match name.as_str() {
                "json" | "xml" | "program" | "multiline" | "name" | "id" | "apply" => {}
                "new-name" => new_name = Some(value.clone()),
                "auto-features" => auto_features = true,
                "no-quota" | "no-admin-quota" => cleared.push(&name[3..]),
                n if n
                    .strip_prefix("no-max-")
                    .is_some_and(|l| PLAN_MAXES.contains(&l)) =>
                {
                    cleared.push(&n[3..]);
                }
                n if n
                    .strip_prefix("no-")
                    .is_some_and(|r| RESTRICTIONS.contains(&r)) => {}
                other => match apply(&mut change, other, value, MODIFY_USAGE) {
                    Ok(true) => {}
                    Ok(false) => {
                        return refuse(MODIFY_USAGE, format!("Unknown parameter --{other}"));
                    }
                    Err(refusal) => return refusal,
                },
            }
        }
        let index = match self.plan_index(params, MODIFY_USAGE) {
            Ok(i) => i,
            Err(refusal) => return refusal,
        };
        let id = self.plans[index].id;
        if let Some(new_name) = &new_name
            && self
                .plans
                .iter()
                .any(|p| p.id != id && p.name.to_lowercase() == new_name.to_lowercase())
        {
            return refuse(
                MODIFY_USAGE,
                format!("A plan named {new_name} already exists"),
            );
        }
        let plan = &mut self.plans[index];
        if let Some(new_name) = new_name {
            plan.name = new_name;
        }
        if change.quota_blocks.is_some() {
            plan.quota_blocks = change.quota_blocks;
        }
        if change.admin_quota_blocks.is_some() {
            plan.admin_quota_blocks = change.admin_quota_blocks;
        }
        for (limit, value) in &change.limits {
            plan.set_limit(limit, Some(*value));
        }
        for what in cleared {
            match what {
                "quota" => plan.quota_blocks = None,
                "admin-quota" => plan.admin_quota_blocks = None,
                max => plan.set_limit(max.trim_start_matches("max-"), None),
            }
        }
        if change.features.is_some() {
            plan.features = change.features;
        }
        if auto_features {
            plan.features = None;
        }
        let plan = plan.clone();
        let mut output = format!("Modified plan {} with ID {}\n", plan.name, plan.id);
        if params.has("apply") {
            let mut count = 0;
            for d in self.domains.values_mut() {
                if d.plan_id == plan.id && d.parent.is_none() {
                    d.plan = plan.name.clone();
                    d.limits_from(&plan);
                    count += 1;
                }
            }
            output.push_str(&format!("Applied to {count} virtual servers\n"));
        }
        Answer::Output(output)
    }

    pub(super) fn delete_plan(&mut self, params: &Params) -> Answer {
        if let Some(flag) = params.unknown(&["name", "id", "multiline"]) {
            return refuse(DELETE_USAGE, format!("Unknown parameter --{flag}"));
        }
        match self.plan_index(params, DELETE_USAGE) {
            // Deleted without a look at the domains still on it, as the real server does.
            Ok(index) => {
                let plan = self.plans.remove(index);
                Answer::Output(format!("Deleted plan {} with ID {}\n", plan.name, plan.id))
            }
            Err(refusal) => refusal,
        }
    }

    pub(super) fn list_plans(&self, params: &Params) -> Answer {
        if let Some(flag) = params.unknown(&["multiline", "name-only", "id-only", "id", "name"]) {
            return refuse(LIST_USAGE, format!("Unknown parameter --{flag}"));
        }
        let plans: Vec<&SimPlan> = if let Some(id) = params.get("id") {
            match self.plans.iter().find(|p| p.id.to_string() == id) {
                Some(p) => vec![p],
                None => return refuse(LIST_USAGE, format!("No plan with ID {id} was found")),
            }
        } else if let Some(name) = params.get("name") {
            let found: Vec<&SimPlan> = self
                .sorted_plans()
                .into_iter()
                .filter(|p| p.name == name)
                .collect();
            if found.is_empty() {
                return refuse(LIST_USAGE, format!("No plan with name {name} was found"));
            }
            found
        } else {
            self.sorted_plans()
        };
        let named = |name: String| Entry {
            name,
            fields: Vec::new(),
        };
        if params.has("name-only") {
            return Answer::List(plans.iter().map(|p| named(p.name.clone())).collect());
        }
        if params.has("id-only") {
            return Answer::List(plans.iter().map(|p| named(p.id.to_string())).collect());
        }
        if params.has("multiline") {
            return Answer::List(plans.iter().map(|p| p.entry()).collect());
        }
        let rows: Vec<Vec<String>> = plans
            .iter()
            .map(|p| {
                vec![
                    p.id.to_string(),
                    p.name.clone(),
                    p.quota_blocks
                        .filter(|b| *b > 0)
                        .map_or("Unlimited".to_owned(), |b| nice_size(b * 1024)),
                    p.limit("doms")
                        .map_or("Unlimited".to_owned(), |v| v.to_string()),
                ]
            })
            .collect();
        Answer::List(table(
            &[("ID", 18), ("Name", 40), ("Quota", 10), ("Domains", 8)],
            &rows,
        ))
    }
}
