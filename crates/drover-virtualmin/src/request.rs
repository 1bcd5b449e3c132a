//! One remote.cgi call: a program and its `--flag value` parameters, checked before sending.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use crate::error::{ErrorKind, VirtualminError};

/// Which time limit a call runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationClass {
    /// Lists and `info`.
    Read,
    /// Changes to an existing domain (enable, disable, modify, users, databases).
    Write,
    /// Creating and deleting domains: slow on real servers (4–10 s).
    Provisioning,
    Backup,
    HealthCheck,
    /// Listing every domain of a server (drift scans, usage): slow where there are thousands.
    DomainSync,
    /// Listing every user of every domain (usage).
    UsageSync,
}

#[derive(Clone)]
enum Value {
    /// `--flag` with no value (an empty form value).
    Flag,
    Text(String),
    /// A password: sent, never shown.
    Secret(SecretString),
    /// A value with a password inside (an SSH backup URL): sent whole, shown without it.
    Masked {
        sent: SecretString,
        shown: String,
    },
}

/// Whether a call that failed in passing is sent again within the same call; ordered from
/// the most careful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Repeat {
    /// Never: the server may have done it (a create, a delete), or one try is the point.
    Never,
    /// After a failure the server answered: an idempotent write. One whose answer never came
    /// may still be running there, and a second would queue behind it (Virtualmin serialises
    /// changes with locks), so the caller looks again before it repeats anything.
    WhenAnswered,
    /// After any transient failure: reads.
    Always,
}

impl Repeat {
    pub(crate) fn allows(self, error: &VirtualminError) -> bool {
        match self {
            Self::Never => false,
            Self::WhenAnswered => !error.unanswered,
            Self::Always => true,
        }
    }
}

/// A call to one Virtualmin program. Parameters keep their order; a name may repeat.
#[derive(Clone)]
pub struct Call {
    program: String,
    params: Vec<(String, Value)>,
    class: OperationClass,
    repeat: Repeat,
    /// Passwords sent with the call, taken out of whatever comes back: programs echo what they
    /// were given (`delete-backup` prints the URL it was given, password and all).
    hidden: Vec<SecretString>,
}

impl Call {
    /// A call; reads (`list-*`, `info`) are classed as reads and repeated after any
    /// transient failure.
    pub fn new(program: &str) -> Self {
        let read = program.starts_with("list-") || program == "info";
        Self {
            program: program.to_owned(),
            params: Vec::new(),
            class: if read {
                OperationClass::Read
            } else {
                OperationClass::Write
            },
            repeat: if read { Repeat::Always } else { Repeat::Never },
            hidden: Vec::new(),
        }
    }

    pub fn flag(mut self, name: &str) -> Self {
        self.params.push((name.to_owned(), Value::Flag));
        self
    }

    pub fn arg(mut self, name: &str, value: impl Into<String>) -> Self {
        self.params
            .push((name.to_owned(), Value::Text(value.into())));
        self
    }

    pub fn secret(mut self, name: &str, value: SecretString) -> Self {
        self.hidden.push(value.clone());
        self.params.push((name.to_owned(), Value::Secret(value)));
        self
    }

    /// A value holding `secret` (sent as `sent`, shown as `shown`); `secret` is hidden in
    /// what comes back.
    pub fn masked(
        mut self,
        name: &str,
        sent: SecretString,
        shown: String,
        secret: SecretString,
    ) -> Self {
        self.hidden.push(secret);
        self.params
            .push((name.to_owned(), Value::Masked { sent, shown }));
        self
    }

    /// Whether the call sends secrets the server may echo back.
    pub fn hidden_in_answers(&self) -> bool {
        !self.hidden.is_empty()
    }

    /// `text` with the call's hidden passwords replaced by `***`: in a URL's `:password@`
    /// always, alone when long enough not to be a common word (a short one would reveal
    /// itself by what it left out).
    pub fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.hidden {
            let secret = secret.expose_secret();
            if secret.is_empty() {
                continue;
            }
            text = text.replace(&format!(":{secret}@"), ":***@");
            if secret.len() >= 8 {
                text = text.replace(secret, "***");
            }
        }
        text
    }

    pub fn class(mut self, class: OperationClass) -> Self {
        self.class = class;
        self
    }

    /// Marks a write as idempotent: repeated after a transient failure the server answered.
    pub fn retry_safe(mut self) -> Self {
        self.repeat = self.repeat.max(Repeat::WhenAnswered);
        self
    }

    /// One try only, even for a read: a health check measures what one attempt gets.
    pub fn single_try(mut self) -> Self {
        self.repeat = Repeat::Never;
        self
    }

    pub fn program(&self) -> &str {
        &self.program
    }

    pub fn operation_class(&self) -> OperationClass {
        self.class
    }

    /// Whether the program changes the server's configuration (takes Virtualmin's lock
    /// files): two such programs running at once on one server can each hold a lock the other
    /// waits for (seen on the real server: `create-domain` and `disable-domain` both hung).
    /// Reads and backups run beside them; a restore re-creates a domain and does not.
    pub fn changes_the_server(&self) -> bool {
        matches!(
            self.class,
            OperationClass::Write | OperationClass::Provisioning
        ) || self.program == "restore-domain"
    }

    pub fn repeat(&self) -> Repeat {
        self.repeat
    }

    /// The program and its parameters as sent, each checked: names of letters, digits, `-`
    /// and `_`; no value with a line break or NUL (the server would split it into extra
    /// arguments).
    /// Each as (name, value, whether it is a flag without a value).
    fn checked(&self) -> Result<Vec<(&str, &str, bool)>, VirtualminError> {
        let valid_name = |n: &str| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if !valid_name(&self.program) {
            return Err(VirtualminError::new(
                ErrorKind::Invalid,
                format!("'{}' is not a program name", self.program),
            ));
        }
        let mut params = Vec::with_capacity(self.params.len());
        for (name, value) in &self.params {
            if !valid_name(name) || name == "program" || name == "json" || name == "xml" {
                return Err(VirtualminError::new(
                    ErrorKind::Invalid,
                    format!("'{name}' is not a parameter drover may send"),
                ));
            }
            let text = match value {
                Value::Flag => "",
                Value::Text(text) => text.as_str(),
                Value::Secret(secret) | Value::Masked { sent: secret, .. } => {
                    secret.expose_secret()
                }
            };
            if text.contains(['\n', '\r', '\0']) {
                return Err(VirtualminError::new(
                    ErrorKind::Invalid,
                    format!(
                        "the value of --{name} contains a line break or NUL, which remote.cgi would split into extra arguments"
                    ),
                ));
            }
            params.push((name.as_str(), text, matches!(value, Value::Flag)));
        }
        Ok(params)
    }

    /// The form body: `program`, each parameter, and `json=1`.
    pub fn form_body(&self) -> Result<String, VirtualminError> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("program", &self.program);
        for (name, text, _) in self.checked()? {
            form.append_pair(name, text);
        }
        form.append_pair("json", "1");
        Ok(form.finish())
    }

    /// The same call as Virtualmin's own command takes it over SSH: `virtualmin PROGRAM
    /// --name 'value' --flag`, each value quoted for the remote shell. A flag is sent without
    /// a value, as remote.cgi sends an empty one.
    pub fn command_line(&self) -> Result<String, VirtualminError> {
        let mut line = format!("virtualmin {}", self.program);
        for (name, text, flag) in self.checked()? {
            line.push_str(" --");
            line.push_str(name);
            if !flag {
                line.push_str(" '");
                line.push_str(&text.replace('\'', r"'\''"));
                line.push('\'');
            }
        }
        Ok(line)
    }
}

/// For logs and call records: secrets shown as `***`.
impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.program)?;
        for (name, value) in &self.params {
            match value {
                Value::Flag => write!(f, " --{name}")?,
                Value::Text(text) => write!(f, " --{name} {text:?}")?,
                Value::Secret(_) => write!(f, " --{name} ***")?,
                Value::Masked { shown, .. } => write!(f, " --{name} {shown:?}")?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Call({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_that_change_the_server_run_one_at_a_time_and_reads_beside_them() {
        assert!(Call::new("disable-domain").changes_the_server());
        let create = Call::new("create-domain").class(OperationClass::Provisioning);
        assert!(create.changes_the_server());
        let restore = Call::new("restore-domain").class(OperationClass::Backup);
        assert!(restore.changes_the_server());
        let backup = Call::new("backup-domain").class(OperationClass::Backup);
        assert!(!backup.changes_the_server());
        assert!(!Call::new("list-domains").changes_the_server());
    }

    #[test]
    fn parameters_become_flags_in_order() {
        let call = Call::new("list-domains")
            .arg("domain", "a.ro")
            .arg("domain", "b.ro")
            .flag("multiline");
        assert_eq!(
            call.form_body().unwrap(),
            "program=list-domains&domain=a.ro&domain=b.ro&multiline=&json=1"
        );
        assert_eq!(call.operation_class(), OperationClass::Read);
        assert_eq!(call.repeat(), Repeat::Always);
        assert_eq!(Call::new("create-domain").repeat(), Repeat::Never);
        let idempotent = Call::new("disable-domain").retry_safe();
        assert_eq!(idempotent.repeat(), Repeat::WhenAnswered);
        assert_eq!(
            call.retry_safe().repeat(),
            Repeat::Always,
            "a read stays a read"
        );
    }

    #[test]
    fn line_breaks_are_refused_before_sending() {
        let err = Call::new("modify-domain")
            .arg("desc", "line one\nline two")
            .form_body()
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert!(err.message.contains("--desc"));
        assert!(
            Call::new("x")
                .secret("pass", "a\0b".to_owned().into())
                .form_body()
                .is_err()
        );
        assert!(Call::new("../../etc/passwd").form_body().is_err());
        assert!(
            Call::new("list-domains")
                .arg("json", "0")
                .form_body()
                .is_err()
        );
    }

    #[test]
    fn secrets_are_sent_but_never_shown() {
        let call = Call::new("create-domain")
            .arg("domain", "a.ro")
            .secret("pass", "hunter2".to_owned().into());
        assert!(call.form_body().unwrap().contains("pass=hunter2"));
        let shown = format!("{call} {call:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("--pass ***"),
            "{shown}"
        );
    }

    #[test]
    fn the_command_line_quotes_each_value_for_the_remote_shell() {
        let call = Call::new("disable-domain")
            .arg("domain", "știri.ro")
            .arg("why", "unpaid; it's $(rm -rf /)")
            .flag("multiline");
        assert_eq!(
            call.command_line().unwrap(),
            r"virtualmin disable-domain --domain 'știri.ro' --why 'unpaid; it'\''s $(rm -rf /)' --multiline"
        );
        let split = Call::new("list-domains").arg("domain", "a.ro\n--delete");
        assert!(split.command_line().is_err());
    }
}
