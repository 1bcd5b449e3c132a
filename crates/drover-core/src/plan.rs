//! Hosting plans: what Virtualmin creates for an account and where it may be placed.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Error, PlanName, Tag};

/// A Virtualmin feature a plan turns on for its accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    Unix,
    Dir,
    Web,
    Ssl,
    Dns,
    Mail,
    Spam,
    Virus,
    Mysql,
    Postgres,
    Webalizer,
    Logrotate,
    Webmin,
}

impl Feature {
    pub const ALL: [Self; 13] = [
        Self::Unix,
        Self::Dir,
        Self::Web,
        Self::Ssl,
        Self::Dns,
        Self::Mail,
        Self::Spam,
        Self::Virus,
        Self::Mysql,
        Self::Postgres,
        Self::Webalizer,
        Self::Logrotate,
        Self::Webmin,
    ];

    /// The name Virtualmin uses, which is also its `create-domain` flag.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unix => "unix",
            Self::Dir => "dir",
            Self::Web => "web",
            Self::Ssl => "ssl",
            Self::Dns => "dns",
            Self::Mail => "mail",
            Self::Spam => "spam",
            Self::Virus => "virus",
            Self::Mysql => "mysql",
            Self::Postgres => "postgres",
            Self::Webalizer => "webalizer",
            Self::Logrotate => "logrotate",
            Self::Webmin => "webmin",
        }
    }

    /// The features this one cannot work without on a top-level account, beyond the
    /// administration user every drover account has (Virtualmin's own dependency checks).
    pub fn needs(self) -> &'static [Feature] {
        match self {
            Self::Ssl | Self::Webalizer | Self::Logrotate => &[Self::Web],
            Self::Spam => &[Self::Mail],
            Self::Virus => &[Self::Mail, Self::Spam],
            _ => &[],
        }
    }

    pub fn parse(input: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str() == input)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|f| f.as_str()).collect();
                Error::invalid("feature", input, format!("one of {}", names.join(", ")))
            })
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that defines a plan. `None` limits are unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PlanSpec {
    /// The plan's name, also the Virtualmin account plan applied to its accounts.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "Web 10GB"))]
    pub name: PlanName,
    /// The Virtualmin server template, when not the server's default.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub template: Option<PlanName>,
    #[serde(default)]
    pub disk_quota_mb: Option<u64>,
    #[serde(default)]
    pub bandwidth_mb: Option<u64>,
    #[serde(default)]
    pub max_mailboxes: Option<u32>,
    /// Each mailbox's disk quota (MB): what a mailbox gets unless it is given less, and the
    /// most it may be given.
    #[serde(default)]
    pub mailbox_quota_mb: Option<u64>,
    #[serde(default)]
    pub max_databases: Option<u32>,
    #[serde(default)]
    pub max_subservers: Option<u32>,
    /// Alias domains an account may have (drover's own limit).
    #[serde(default)]
    pub max_aliases: Option<u32>,
    /// Hours between an account's scheduled backups: unset, the fleet's interval
    /// (`DROVER_BACKUP_INTERVAL`); 0, none are scheduled.
    #[serde(default)]
    pub backup_interval_hours: Option<u32>,
    /// Features turned on for each account; empty means the server's defaults.
    #[serde(default)]
    pub features: Vec<Feature>,
    /// Tags a server must carry to host this plan's accounts.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub required_tags: Vec<Tag>,
}

/// What an account holds, as a plan's limits count it (those being deleted left out).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceCounts {
    pub mailboxes: usize,
    pub mysql_databases: usize,
    pub postgres_databases: usize,
    pub aliases: usize,
    pub subservers: usize,
    /// The largest quota a mailbox was given of its own (MB).
    pub largest_mailbox_quota_mb: Option<u64>,
}

impl PlanSpec {
    /// Whether an account that fits `before` might not fit this plan: a limit set or lowered,
    /// or a feature taken away. A plan's edit checks its accounts only then.
    pub fn narrower_than(&self, before: &PlanSpec) -> bool {
        let lowered = |now: Option<u64>, was: Option<u64>| match (now, was) {
            (Some(now), Some(was)) => now < was,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let counts = [
            (self.max_mailboxes, before.max_mailboxes),
            (self.max_databases, before.max_databases),
            (self.max_aliases, before.max_aliases),
            (self.max_subservers, before.max_subservers),
        ];
        counts
            .into_iter()
            .any(|(now, was)| lowered(now.map(u64::from), was.map(u64::from)))
            || lowered(self.mailbox_quota_mb, before.mailbox_quota_mb)
            || (!self.features.is_empty()
                && (before.features.is_empty()
                    || before.features.iter().any(|f| !self.features.contains(f))))
            // The server's defaults never count as giving PostgreSQL (see `overruns`).
            || (self.features.is_empty() && before.features.contains(&Feature::Postgres))
    }

    /// Where an account holding `counts` is past this plan: each limit exceeded, and each
    /// resource whose feature the plan does not give. Empty when it fits.
    pub fn overruns(&self, counts: &ResourceCounts) -> Vec<String> {
        let mut over = Vec::new();
        let databases = counts.mysql_databases + counts.postgres_databases;
        for (what, held, limit) in [
            ("mailboxes", counts.mailboxes, self.max_mailboxes),
            ("databases", databases, self.max_databases),
            ("alias domains", counts.aliases, self.max_aliases),
            ("sub-servers", counts.subservers, self.max_subservers),
        ] {
            if let Some(limit) = limit.filter(|l| held > *l as usize) {
                over.push(format!("{held} {what}, at most {limit}"));
            }
        }
        if let (Some(largest), Some(limit)) =
            (counts.largest_mailbox_quota_mb, self.mailbox_quota_mb)
            && largest > limit
        {
            over.push(format!(
                "a mailbox of {largest} MB, at most {limit} MB each"
            ));
        }
        let lacks = |f: Feature| !self.features.is_empty() && !self.features.contains(&f);
        let postgres_lacking =
            counts.postgres_databases > 0 && (self.features.is_empty() || lacks(Feature::Postgres));
        for (what, held, lacking, feature) in [
            (
                "mailboxes",
                counts.mailboxes,
                lacks(Feature::Mail),
                Feature::Mail,
            ),
            (
                "MySQL databases",
                counts.mysql_databases,
                lacks(Feature::Mysql),
                Feature::Mysql,
            ),
            (
                "PostgreSQL databases",
                counts.postgres_databases,
                postgres_lacking,
                Feature::Postgres,
            ),
        ] {
            if held > 0 && lacking {
                over.push(format!("{held} {what} without the feature {feature}"));
            }
        }
        over
    }
}

/// A partial change to a plan: absent fields are kept; `null` clears an optional one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PlanPatch {
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub name: Option<PlanName>,
    #[serde(default, deserialize_with = "crate::patch::nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub template: Option<Option<PlanName>>,
    #[serde(default, deserialize_with = "crate::patch::nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub disk_quota_mb: Option<Option<u64>>,
    #[serde(default, deserialize_with = "crate::patch::nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub bandwidth_mb: Option<Option<u64>>,
    #[serde(default, deserialize_with = "crate::patch::nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>))]
    pub max_mailboxes: Option<Option<u32>>,
    #[serde(default, deserialize_with = "crate::patch::nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub mailbox_quota_mb: Option<Option<u64>>,
    #[serde(default, deserialize_with = "crate::patch::nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>))]
    pub max_databases: Option<Option<u32>>,
    #[serde(default, deserialize_with = "crate::patch::nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>))]
    pub max_subservers: Option<Option<u32>>,
    #[serde(default, deserialize_with = "crate::patch::nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>))]
    pub max_aliases: Option<Option<u32>>,
    #[serde(default, deserialize_with = "crate::patch::nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>))]
    pub backup_interval_hours: Option<Option<u32>>,
    pub features: Option<Vec<Feature>>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>))]
    pub required_tags: Option<Vec<Tag>>,
}

impl PlanSpec {
    /// Sorts and deduplicates the lists, so equal plans compare equal.
    pub fn normalized(mut self) -> Self {
        self.features.sort();
        self.features.dedup();
        self.required_tags.sort();
        self.required_tags.dedup();
        self
    }

    /// The largest size a plan may give, in MB: 1 EiB, far beyond any disk, and what every
    /// database and Virtualmin hold without loss.
    pub const MAX_MB: u64 = 1 << 40;
    /// The longest a plan may leave between scheduled backups: a year.
    pub const MAX_BACKUP_HOURS: u32 = 8760;

    /// How long an account on this plan may go between scheduled backups, given the fleet's
    /// interval: `None` when none are scheduled.
    pub fn backup_interval(&self, fleet: jiff::SignedDuration) -> Option<jiff::SignedDuration> {
        match self.backup_interval_hours {
            None => Some(fleet),
            Some(0) => None,
            Some(hours) => Some(jiff::SignedDuration::from_hours(i64::from(hours))),
        }
    }

    /// The plan, if its features can work together on a Virtualmin server and its sizes are
    /// within bounds; otherwise what is wrong.
    pub fn validated(self) -> Result<Self, Error> {
        let spec = self.normalized();
        if let Some(hours) = spec
            .backup_interval_hours
            .filter(|h| *h > Self::MAX_BACKUP_HOURS)
        {
            return Err(Error::invalid(
                "backup interval (hours)",
                &hours.to_string(),
                format!(
                    "0 (no scheduled backups) to {} (a year); leave it out for the fleet's \
                     interval",
                    Self::MAX_BACKUP_HOURS
                ),
            ));
        }
        if spec.mailbox_quota_mb == Some(0) {
            return Err(Error::invalid(
                "mailbox quota (MB)",
                "0",
                "at least 1 MB; leave it out for no limit",
            ));
        }
        for (what, value) in [
            ("disk quota (MB)", spec.disk_quota_mb),
            ("bandwidth (MB)", spec.bandwidth_mb),
            ("mailbox quota (MB)", spec.mailbox_quota_mb),
        ] {
            if let Some(mb) = value.filter(|mb| *mb > Self::MAX_MB) {
                return Err(Error::invalid(
                    what,
                    &mb.to_string(),
                    format!(
                        "at most {} MB (1 EiB); leave it out for no limit",
                        Self::MAX_MB
                    ),
                ));
            }
        }
        let missing: Vec<String> = spec
            .features
            .iter()
            .flat_map(|f| f.needs().iter().map(move |n| (*f, *n)))
            .filter(|(_, needed)| !spec.features.contains(needed))
            .map(|(f, needed)| format!("{f} needs {needed}"))
            .collect();
        if missing.is_empty() {
            Ok(spec)
        } else {
            let names: Vec<_> = spec.features.iter().map(|f| f.as_str()).collect();
            Err(Error::invalid(
                "features",
                &names.join(", "),
                format!(
                    "{}: a plan's features must include what each needs (ssl, webalizer and \
                     logrotate need web; spam needs mail; virus needs mail and spam)",
                    missing.join("; ")
                ),
            ))
        }
    }

    /// The feature flags Virtualmin is given for an account of this plan. Flags replace the
    /// server's defaults, and Virtualmin refuses mail or a website without an administration
    /// user, so `unix` and `dir` (the user and its home) always come with the plan's own.
    /// Empty when the plan leaves features to the server's defaults.
    pub fn server_features(&self) -> Vec<Feature> {
        Self::server_features_of(&self.features)
    }

    /// `server_features` of a plan's feature list.
    pub fn server_features_of(plan_features: &[Feature]) -> Vec<Feature> {
        if plan_features.is_empty() {
            return Vec::new();
        }
        let mut features = plan_features.to_vec();
        features.extend([Feature::Unix, Feature::Dir]);
        features.sort();
        features.dedup();
        features
    }

    pub fn patched(self, patch: PlanPatch) -> Self {
        Self {
            name: patch.name.unwrap_or(self.name),
            template: patch.template.unwrap_or(self.template),
            disk_quota_mb: patch.disk_quota_mb.unwrap_or(self.disk_quota_mb),
            bandwidth_mb: patch.bandwidth_mb.unwrap_or(self.bandwidth_mb),
            max_mailboxes: patch.max_mailboxes.unwrap_or(self.max_mailboxes),
            mailbox_quota_mb: patch.mailbox_quota_mb.unwrap_or(self.mailbox_quota_mb),
            max_databases: patch.max_databases.unwrap_or(self.max_databases),
            max_subservers: patch.max_subservers.unwrap_or(self.max_subservers),
            max_aliases: patch.max_aliases.unwrap_or(self.max_aliases),
            backup_interval_hours: patch
                .backup_interval_hours
                .unwrap_or(self.backup_interval_hours),
            features: patch.features.unwrap_or(self.features),
            required_tags: patch.required_tags.unwrap_or(self.required_tags),
        }
        .normalized()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PlanSpec {
        serde_json::from_str(
            r#"{"name":"Web 10GB","disk_quota_mb":10240,"features":["web","dns","web"]}"#,
        )
        .unwrap()
    }

    #[test]
    fn a_patch_keeps_absent_fields_and_clears_nulls() {
        let patch: PlanPatch = serde_json::from_str(
            r#"{"disk_quota_mb":null,"max_mailboxes":50,"required_tags":["ssd"]}"#,
        )
        .unwrap();
        let patched = spec().normalized().patched(patch);
        assert_eq!(patched.name.as_str(), "Web 10GB");
        assert_eq!(patched.disk_quota_mb, None);
        assert_eq!(patched.max_mailboxes, Some(50));
        assert_eq!(patched.features, vec![Feature::Web, Feature::Dns]);
        assert_eq!(patched.required_tags, vec![Tag::parse("ssd").unwrap()]);
    }

    #[test]
    fn sizes_beyond_what_is_stored_are_refused_not_clamped() {
        let largest = PlanSpec {
            disk_quota_mb: Some(PlanSpec::MAX_MB),
            bandwidth_mb: Some(PlanSpec::MAX_MB),
            ..spec()
        };
        assert!(largest.clone().validated().is_ok());
        for spec in [
            PlanSpec {
                disk_quota_mb: Some(PlanSpec::MAX_MB + 1),
                ..largest.clone()
            },
            PlanSpec {
                bandwidth_mb: Some(u64::MAX),
                ..largest.clone()
            },
            PlanSpec {
                mailbox_quota_mb: Some(PlanSpec::MAX_MB + 1),
                ..largest.clone()
            },
        ] {
            let err = spec.validated().unwrap_err().to_string();
            assert!(err.contains("at most 1099511627776 MB"), "{err}");
        }
        let none = PlanSpec {
            mailbox_quota_mb: Some(0),
            ..largest
        };
        let err = none.validated().unwrap_err().to_string();
        assert!(
            err.contains("at least 1 MB; leave it out for no limit"),
            "{err}"
        );
    }

    #[test]
    fn a_plan_is_narrower_when_a_limit_is_set_or_lowered_or_a_feature_taken_away() {
        let before = PlanSpec {
            max_mailboxes: Some(10),
            mailbox_quota_mb: Some(500),
            ..spec().normalized()
        };
        let after = |patch: &str| before.clone().patched(serde_json::from_str(patch).unwrap());
        for narrower in [
            r#"{"max_mailboxes":9}"#,
            r#"{"max_databases":5}"#,
            r#"{"mailbox_quota_mb":499}"#,
            r#"{"features":["web"]}"#,
        ] {
            assert!(after(narrower).narrower_than(&before), "{narrower}");
        }
        for wider in [
            r#"{"max_mailboxes":10}"#,
            r#"{"max_mailboxes":null}"#,
            r#"{"mailbox_quota_mb":501}"#,
            r#"{"features":["web","dns","mail"]}"#,
            r#"{"disk_quota_mb":1}"#,
        ] {
            assert!(!after(wider).narrower_than(&before), "{wider}");
        }
        let defaults = PlanSpec {
            features: vec![],
            ..before.clone()
        };
        assert!(before.narrower_than(&defaults));
        assert!(!defaults.narrower_than(&before));
        let postgres = PlanSpec {
            features: vec![Feature::Postgres],
            ..before.clone()
        };
        assert!(defaults.narrower_than(&postgres));
    }

    #[test]
    fn a_plan_backs_up_on_the_fleets_interval_its_own_or_not_at_all() {
        let day = jiff::SignedDuration::from_hours(24);
        let with = |hours: Option<u32>| PlanSpec {
            backup_interval_hours: hours,
            ..spec()
        };
        assert_eq!(with(None).backup_interval(day), Some(day));
        assert_eq!(
            with(Some(6)).backup_interval(day),
            Some(jiff::SignedDuration::from_hours(6))
        );
        assert_eq!(with(Some(0)).backup_interval(day), None);
        assert!(with(Some(8760)).validated().is_ok());
        let err = with(Some(8761)).validated().unwrap_err().to_string();
        assert!(err.contains("0 (no scheduled backups) to 8760"), "{err}");
    }

    #[test]
    fn features_that_cannot_work_together_are_refused_with_what_each_needs() {
        let with = |features: &[Feature]| PlanSpec {
            features: features.to_vec(),
            ..spec()
        };
        use Feature::*;
        let err = with(&[Ssl, Virus, Mail])
            .validated()
            .unwrap_err()
            .to_string();
        assert!(err.contains("ssl needs web; virus needs spam"), "{err}");
        assert!(err.contains("invalid features 'ssl, mail, virus'"), "{err}");
        for ok in [
            &[][..],
            &[Web, Dns, Mail, Mysql],
            &[Web, Ssl, Logrotate, Webalizer],
            &[Mail, Spam, Virus],
        ] {
            assert!(with(ok).validated().is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn the_server_is_told_the_administration_user_with_any_feature() {
        let mut plan = spec().normalized();
        use Feature::*;
        assert_eq!(plan.server_features(), vec![Unix, Dir, Web, Dns]);
        plan.features = vec![Dns];
        assert_eq!(plan.server_features(), vec![Unix, Dir, Dns]);
        plan.features = vec![];
        assert!(plan.server_features().is_empty(), "the server's defaults");
    }

    #[test]
    fn unknown_fields_and_features_are_refused() {
        let err = serde_json::from_str::<PlanSpec>(r#"{"name":"x","quota":1}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `quota`"), "{err}");
        let err =
            serde_json::from_str::<PlanSpec>(r#"{"name":"x","features":["ftp"]}"#).unwrap_err();
        assert!(err.to_string().contains("unknown variant `ftp`"), "{err}");
        assert!(
            Feature::parse("ftp")
                .unwrap_err()
                .to_string()
                .contains("one of unix")
        );
    }

    #[test]
    fn a_plan_says_where_an_account_is_past_it() {
        let plan: PlanSpec = serde_json::from_value(serde_json::json!({
            "name": "Small", "features": ["web", "mysql"], "max_mailboxes": 2,
            "max_databases": 1, "max_aliases": 0
        }))
        .unwrap();
        let fits = ResourceCounts {
            mysql_databases: 1,
            ..ResourceCounts::default()
        };
        assert!(plan.overruns(&fits).is_empty());
        let held = ResourceCounts {
            mailboxes: 3,
            mysql_databases: 1,
            postgres_databases: 1,
            aliases: 1,
            subservers: 4,
            largest_mailbox_quota_mb: None,
        };
        assert_eq!(
            plan.overruns(&held),
            [
                "3 mailboxes, at most 2",
                "2 databases, at most 1",
                "1 alias domains, at most 0",
                "3 mailboxes without the feature mail",
                "1 PostgreSQL databases without the feature postgres",
            ]
        );
    }
}
