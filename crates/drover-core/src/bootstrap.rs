//! Bringing a bare server into the fleet: the steps drover takes over SSH, in order. Each
//! step on the server is a check that says whether it is done and a script that does it;
//! both are idempotent, so a run that stopped anywhere is resumed by running it again (a
//! step found done is not done twice). Secrets never appear in a command: they are given on
//! the command's standard input.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{CertFingerprint, CredentialRef, Error, Hostname, ServerName, ServerSpec, ServerSsh};

/// What an operator says about a server drover should bring into the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BootstrapSpec {
    /// The name it will have in the fleet.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "vm-eu-9"))]
    pub name: ServerName,
    /// Where drover reaches it, over SSH and then over Webmin's API.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "vm9.example.net"))]
    pub host: Hostname,
    /// How drover logs in over SSH (as root: every step runs as root); kept as the server's
    /// break-glass access.
    pub ssh: ServerSsh,
    /// Where Webmin will answer.
    #[serde(default = "default_webmin_port")]
    pub webmin_port: u16,
    /// The Webmin user made for drover: allowed remote calls only (no pages, no other module).
    #[serde(default = "default_api_user")]
    pub api_user: String,
    /// Where that user's password is kept. A `file:` reference to a file that does not exist
    /// yet is filled with a new random password.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "file:/etc/drover/secrets/vm9.password"))]
    pub api_credentials: CredentialRef,
    /// The most accounts it may hold.
    pub capacity: u32,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub ipv4: Option<std::net::Ipv4Addr>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub ipv6: Option<std::net::Ipv6Addr>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub tags: Vec<crate::Tag>,
    /// Where Webmin and Virtualmin come from.
    #[serde(default)]
    pub install: InstallSource,
    /// drover's own addresses (an address or a network, `192.0.2.10`, `2001:db8::/64`): the
    /// only ones its Webmin user may log in from, and, with `firewall`, the only ones that may
    /// reach Webmin and SSH.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub allow_from: Vec<AllowedSource>,
    /// Lets only `allow_from` reach Webmin's and SSH's ports (nftables).
    #[serde(default)]
    pub firewall: bool,
    /// Bans addresses that keep failing to log in to SSH or Webmin (fail2ban), never
    /// `allow_from`.
    #[serde(default)]
    pub fail2ban: bool,
}

fn default_webmin_port() -> u16 {
    10000
}

fn default_api_user() -> String {
    "drover".to_owned()
}

/// Where Webmin and Virtualmin are installed from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InstallSource {
    /// The archives in drover's own folder (`DROVER_VIRTUALMIN_SOURCES`), copied over SSH:
    /// for servers that cannot reach the internet. Debian's packages still come from the
    /// server's own mirror.
    #[default]
    LocalCopy,
    /// Virtualmin's own installer, downloaded by the server.
    Online,
}

/// An address or a network drover connects from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedSource {
    pub address: IpAddr,
    pub prefix: Option<u8>,
}

impl AllowedSource {
    pub fn parse(input: &str) -> Result<Self, Error> {
        let refused = || {
            Error::invalid(
                "address",
                input,
                "an IP address or a network (192.0.2.0/24)",
            )
        };
        let (address, prefix) = match input.trim().split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| refused())?)),
            None => (input.trim(), None),
        };
        let address: IpAddr = address.parse().map_err(|_| refused())?;
        let longest = if address.is_ipv4() { 32 } else { 128 };
        if prefix.is_some_and(|p| p > longest) {
            return Err(refused());
        }
        Ok(Self { address, prefix })
    }
}

impl fmt::Display for AllowedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix {
            Some(prefix) => write!(f, "{}/{prefix}", self.address),
            None => write!(f, "{}", self.address),
        }
    }
}

impl Serialize for AllowedSource {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AllowedSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl BootstrapSpec {
    /// Checks what field types alone cannot say.
    pub fn validated(self) -> Result<Self, Error> {
        // The server it becomes is checked as every server is.
        self.server_spec(None).validated()?;
        if self.api_user == "root" {
            return Err(Error::invalid(
                "api_user",
                &self.api_user,
                "a Webmin user of drover's own, not root (root keeps its own login)",
            ));
        }
        if !self
            .api_user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            || self.api_user.starts_with(['-', '.'])
        {
            return Err(Error::invalid(
                "api_user",
                &self.api_user,
                "letters, digits, '-', '_' and '.', not starting with '-' or '.'",
            ));
        }
        if self.webmin_port == 0 || self.webmin_port == self.ssh.port {
            return Err(Error::invalid(
                "webmin_port",
                &self.webmin_port.to_string(),
                "a TCP port from 1 to 65535, not SSH's",
            ));
        }
        if self.firewall && self.allow_from.is_empty() {
            return Err(Error::invalid(
                "allow_from",
                "(none)",
                "drover's own addresses, which the firewall must let in (without them it would \
                 shut drover out)",
            ));
        }
        if self.fail2ban && self.allow_from.is_empty() {
            return Err(Error::invalid(
                "allow_from",
                "(none)",
                "drover's own addresses, which fail2ban must never ban (a few failed logins of \
                 drover's would shut it out)",
            ));
        }
        Ok(self)
    }

    /// The server as it is registered, its certificate pinned once read.
    pub fn server_spec(&self, pinned: Option<CertFingerprint>) -> ServerSpec {
        ServerSpec {
            name: self.name.clone(),
            hostname: self.host.clone(),
            port: self.webmin_port,
            ipv4: self.ipv4,
            ipv6: self.ipv6,
            capacity: self.capacity,
            tags: self.tags.clone(),
            api_user: self.api_user.clone(),
            credentials: self.api_credentials.clone(),
            tls_verify: true,
            pinned_cert_sha256: pinned,
            rate_qps: None,
            ssh: Some(self.ssh.clone()),
        }
    }
}

/// The steps of a bootstrap, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum BootstrapStep {
    CheckSystem,
    InstallPackages,
    InstallVirtualmin,
    ConfigureVirtualmin,
    ApiUser,
    Firewall,
    Fail2ban,
    StartWebmin,
    ReadCertificate,
    Register,
    FirstHealthCheck,
}

impl BootstrapStep {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CheckSystem => "check-system",
            Self::InstallPackages => "install-packages",
            Self::InstallVirtualmin => "install-virtualmin",
            Self::ConfigureVirtualmin => "configure-virtualmin",
            Self::ApiUser => "api-user",
            Self::Firewall => "firewall",
            Self::Fail2ban => "fail2ban",
            Self::StartWebmin => "start-webmin",
            Self::ReadCertificate => "read-certificate",
            Self::Register => "register",
            Self::FirstHealthCheck => "first-health-check",
        }
    }
}

impl fmt::Display for BootstrapStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The archives a local-copy install sends to the server, as found in drover's folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceArchives {
    /// `webmin-2.660-….tar.xz`
    pub webmin: String,
    /// `virtualmin-gpl-8.1.0-….tar.xz`
    pub virtualmin: String,
    /// `2.660`: Webmin is installed in `/usr/local/webmin-<version>`.
    pub webmin_version: String,
}

impl SourceArchives {
    /// Reads Webmin's version from its archive's name.
    pub fn new(webmin: &str, virtualmin: &str) -> Result<Self, Error> {
        let refused = || {
            Error::invalid(
                "Webmin archive",
                webmin,
                "webmin-<major>.<minor>…tar.xz, as Webmin publishes it",
            )
        };
        let rest = webmin.strip_prefix("webmin-").ok_or_else(refused)?;
        let parts: Vec<&str> = rest.split(['-', '.']).take(2).collect();
        let numeric = |p: &&str| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit());
        if parts.len() != 2 || !parts.iter().all(numeric) {
            return Err(refused());
        }
        let version = parts.join(".");
        Ok(Self {
            webmin: webmin.to_owned(),
            virtualmin: virtualmin.to_owned(),
            webmin_version: version,
        })
    }
}

/// Where a local copy's archives wait on the server until installed: root's alone (made
/// so before anything is copied), so that no other user can swap them between their check
/// and their install.
pub const UPLOAD_DIR: &str = "/root/drover-bootstrap";

/// One step as it will run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlannedStep {
    pub step: BootstrapStep,
    /// What it does, for an operator.
    pub what: String,
    /// Run first: exit status 0 means the step is done already and is not run again.
    pub check: Option<String>,
    /// Files copied into `UPLOAD_DIR` before `run`.
    pub uploads: Vec<String>,
    /// The script that does the step, on the server (none: drover's own work).
    pub run: Option<String>,
    /// The check and the script read the Webmin user's password on their standard input.
    pub reads_password: bool,
}

/// Debian's packages a Virtualmin server needs (what Virtualmin's own installer puts on a
/// minimal LAMP server, and what drover's real tier runs with).
pub const PACKAGES: &[&str] = &[
    "apache2",
    "bind9",
    "bind9-utils",
    "bind9-dnsutils",
    "postfix",
    "php-fpm",
    "php-cli",
    "php-mysql",
    "libapache2-mod-fcgid",
    "mariadb-server",
    "libnet-ssleay-perl",
    "libauthen-pam-perl",
    "libio-pty-perl",
    "libdbi-perl",
    "libdbd-mysql-perl",
    "libjson-xs-perl",
    "libxml-simple-perl",
    "libencode-detect-perl",
    "openssl",
    "logrotate",
    "libdigest-sha-perl",
    "libfile-which-perl",
    "zip",
    "unzip",
    "bzip2",
    "procps",
    "libtimedate-perl",
    "libsocket6-perl",
    "curl",
    "xz-utils",
];

/// Virtualmin's settings drover runs with (as its real tier does): the features its plans
/// use on, and those it does not drive off (per-domain SSL sites, spam and virus filtering,
/// quotas, status monitoring), which an operator may turn on afterwards.
pub const VIRTUALMIN_SETTINGS: &[(&str, &str)] = &[
    ("unix", "3"),
    ("dir", "3"),
    ("web", "1"),
    ("mail", "1"),
    ("dns", "1"),
    ("mysql", "1"),
    ("webmin", "1"),
    ("logrotate", "1"),
    ("ssl", "0"),
    ("spam", "0"),
    ("virus", "0"),
    ("postgres", "0"),
    ("webalizer", "0"),
    ("status", "0"),
    ("quotas", "0"),
    ("bw_active", "0"),
];

/// Every step, in order, as it will run for `spec` (a local copy installs `sources`).
pub fn plan(spec: &BootstrapSpec, sources: Option<&SourceArchives>) -> Vec<PlannedStep> {
    let mut steps = vec![
        check_system(),
        install_packages(spec),
        install_virtualmin(spec, sources),
        configure_virtualmin(),
        api_user(spec),
    ];
    if spec.firewall {
        steps.push(firewall(spec));
    }
    if spec.fail2ban {
        steps.push(fail2ban(spec));
    }
    steps.extend([
        start_webmin(spec),
        read_certificate(),
        PlannedStep {
            step: BootstrapStep::Register,
            what: format!(
                "record the server {} in drover's fleet, its certificate pinned and its SSH \
                 access kept for the break-glass path, in maintenance (no accounts yet)",
                spec.name
            ),
            check: None,
            uploads: Vec::new(),
            run: None,
            reads_password: false,
        },
        PlannedStep {
            step: BootstrapStep::FirstHealthCheck,
            what: format!(
                "check it as health checks do (log in as {}, certificate against the pin) and \
                 take it out of maintenance once that passes",
                spec.api_user
            ),
            check: None,
            uploads: Vec::new(),
            run: None,
            reads_password: false,
        },
    ]);
    steps
}

fn step(step: BootstrapStep, what: String, check: Option<String>, run: String) -> PlannedStep {
    PlannedStep {
        step,
        what,
        check,
        uploads: Vec::new(),
        run: Some(run),
        reads_password: false,
    }
}

/// Webmin's root folder, as its own settings say: scripts start with this.
const WEBMIN_ROOT: &str = "root=$(sed -n 's/^root=//p' /etc/webmin/miniserv.conf 2>/dev/null)";

fn check_system() -> PlannedStep {
    step(
        BootstrapStep::CheckSystem,
        "check the system: Debian 12 or 13 or Ubuntu 22.04 or 24.04, on x86_64 or aarch64, \
         logged in as root, 2 GB free under /usr/local"
            .into(),
        None,
        r#"set -eu
. /etc/os-release
case "$ID:${VERSION_ID:-none}" in
debian:12*|debian:13*|ubuntu:22.04|ubuntu:24.04) ;;
*) echo "$PRETTY_NAME is not supported: Debian 12 or 13, or Ubuntu 22.04 or 24.04, is" >&2; exit 1 ;;
esac
case "$(uname -m)" in
x86_64|aarch64) ;;
*) echo "the architecture $(uname -m) is not supported: x86_64 or aarch64 is" >&2; exit 1 ;;
esac
[ "$(id -u)" = 0 ] || { echo "commands run as $(id -un), not root: log in as root" >&2; exit 1; }
free=$(df -Pk /usr/local | awk 'NR == 2 { print $4 }')
[ "$free" -ge 2097152 ] || { echo "only $((free / 1024)) MB free under /usr/local: 2048 MB are needed" >&2; exit 1; }
echo "$PRETTY_NAME, $(uname -m), $((free / 1024)) MB free""#
            .into(),
    )
}

fn install_packages(spec: &BootstrapSpec) -> PlannedStep {
    let packages = PACKAGES.join(" ");
    step(
        BootstrapStep::InstallPackages,
        format!("install Debian's packages Virtualmin drives: {packages}"),
        Some(format!(
            r#"for p in {packages}; do
dpkg-query -W -f='${{Status}}' "$p" 2>/dev/null | grep -q 'ok installed' || {{ echo "not installed yet: $p"; exit 1; }}
done"#
        )),
        format!(
            r#"set -eu
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select Internet Site" | debconf-set-selections
echo "postfix postfix/mailname string {host}" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends {packages}"#,
            host = spec.host
        ),
    )
}

/// Done when Webmin answers from a folder with Virtualmin's remote API in it.
fn installed_check() -> String {
    format!(
        r#"{WEBMIN_ROOT}
[ -n "$root" ] && [ -x "$root/virtual-server/remote.cgi" ] || {{ echo "Webmin with Virtualmin is not installed yet"; exit 1; }}
echo "Webmin $(cat "$root/version") with Virtualmin $(sed -n 's/^version=//p' "$root/virtual-server/module.info") in $root""#
    )
}

fn install_virtualmin(spec: &BootstrapSpec, sources: Option<&SourceArchives>) -> PlannedStep {
    let port = spec.webmin_port;
    match (spec.install, sources) {
        (InstallSource::LocalCopy, Some(sources)) => {
            let dir = format!("/usr/local/webmin-{}", sources.webmin_version);
            PlannedStep {
                step: BootstrapStep::InstallVirtualmin,
                what: format!(
                    "copy {} and {} to {UPLOAD_DIR}, check them against SHA256SUMS and install \
                     them in {dir} (Webmin's own setup, on port {port}, started at boot, its \
                     root login locked: root works over SSH)",
                    sources.webmin, sources.virtualmin
                ),
                check: Some(installed_check()),
                uploads: vec![
                    sources.webmin.clone(),
                    sources.virtualmin.clone(),
                    "SHA256SUMS".to_owned(),
                ],
                run: Some(format!(
                    r#"set -eu
cd {UPLOAD_DIR}
sha256sum --quiet -c SHA256SUMS
dir={dir}
rm -rf "$dir"
mkdir -p "$dir/virtual-server"
tar -xJf {webmin} -C "$dir"
tar -xJf {virtualmin} -C "$dir/virtual-server"
cd "$dir"
env config_dir=/etc/webmin var_dir=/var/webmin perl=/usr/bin/perl port={port} login=root \
    crypt='!' ssl=1 atboot=1 nostart=1 autoos=1 ./setup.sh </dev/null >{UPLOAD_DIR}/setup.log 2>&1 \
    || {{ tail -n 20 {UPLOAD_DIR}/setup.log >&2; exit 1; }}
rm -rf {UPLOAD_DIR}"#,
                    webmin = sources.webmin,
                    virtualmin = sources.virtualmin,
                )),
                reads_password: false,
            }
        }
        _ => step(
            BootstrapStep::InstallVirtualmin,
            "download Virtualmin's own installer and run it (minimal LAMP bundle)".into(),
            Some(installed_check()),
            r#"set -eu
export DEBIAN_FRONTEND=noninteractive
command -v curl >/dev/null || { apt-get update -qq; apt-get install -y -qq curl; }
install -d -m 700 /root/drover-bootstrap
curl -fsSL -o /root/drover-bootstrap/virtualmin-install.sh https://software.virtualmin.com/gpl/scripts/virtualmin-install.sh
sh /root/drover-bootstrap/virtualmin-install.sh --minimal --bundle LAMP --force"#
                .into(),
        ),
    }
}

fn configure_virtualmin() -> PlannedStep {
    let settings: Vec<String> = VIRTUALMIN_SETTINGS
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let settings = settings.join(" ");
    let marker = "/etc/webmin/virtual-server/drover-config-checked";
    step(
        BootstrapStep::ConfigureVirtualmin,
        format!(
            "set Virtualmin's features as drover runs them ({settings}), prepare Apache \
             (PHP through FPM) and Postfix (the maps Virtualmin writes) as Virtualmin expects, \
             and pass Virtualmin's own check-config"
        ),
        Some(format!(
            r#"c=/etc/webmin/virtual-server/config
for kv in {settings}; do
grep -qx "$kv" "$c" 2>/dev/null || {{ echo "not set yet: $kv"; exit 1; }}
done
[ -f {marker} ] || {{ echo "check-config has not passed yet"; exit 1; }}"#
        )),
        format!(
            r#"set -eu
{WEBMIN_ROOT}
c=/etc/webmin/virtual-server/config
touch "$c"
for kv in {settings}; do
k=${{kv%%=*}}
if grep -q "^$k=" "$c"; then sed -i "s|^$k=.*|$kv|" "$c"; else echo "$kv" >>"$c"; fi
done
php=$(ls /etc/php | sort -V | tail -n 1)
a2enmod -q rewrite proxy_fcgi setenvif actions fcgid include >/dev/null
a2enconf -q "php$php-fpm" >/dev/null
systemctl reload apache2 2>/dev/null || /etc/init.d/apache2 reload >/dev/null
for map in virtual bcc dependent; do
touch "/etc/postfix/$map"
postmap "/etc/postfix/$map"
done
postconf -e "virtual_alias_maps = hash:/etc/postfix/virtual" \
    "sender_bcc_maps = hash:/etc/postfix/bcc" \
    "sender_dependent_default_transport_maps = hash:/etc/postfix/dependent" \
    "home_mailbox = Maildir/"
postfix reload >/dev/null 2>&1 || true
env WEBMIN_CONFIG=/etc/webmin WEBMIN_VAR=/var/webmin "$root/virtual-server/check-config.pl"
touch {marker}"#
        ),
    )
}

/// Webmin writes a user's allowed addresses with `;` for `:`.
fn webmin_allow(spec: &BootstrapSpec) -> String {
    if spec.allow_from.is_empty() {
        return String::new();
    }
    // A bare IPv4 address as one host: Webmin reads trailing zeros (10.0.0.0) as wildcards.
    let sources: Vec<String> = spec
        .allow_from
        .iter()
        .map(|s| match (s.address, s.prefix) {
            (IpAddr::V4(a), None) => format!("{a}/32"),
            _ => s.to_string().replace(':', ";"),
        })
        .collect();
    format!("allow {}", sources.join(" "))
}

fn api_user(spec: &BootstrapSpec) -> PlannedStep {
    let user = &spec.api_user;
    let allow = webmin_allow(spec);
    let whence = if allow.is_empty() {
        "from any address".to_owned()
    } else {
        format!("only from {}", allow.trim_start_matches("allow "))
    };
    PlannedStep {
        step: BootstrapStep::ApiUser,
        what: format!(
            "make the Webmin user {user} for drover, with the password from its credentials: \
             Virtualmin's module only, remote calls only (Webmin's rpc=3: no pages), logging \
             in {whence}"
        ),
        check: Some(format!(
            r#"IFS= read -r pass
line=$(awk -F: -v u={user} '$1 == u' /etc/webmin/miniserv.users)
[ -n "$line" ] || {{ echo "no Webmin user {user} yet"; exit 1; }}
[ "$(echo "$line" | cut -d: -f5)" = "{allow}" ] || {{ echo "{user} may log in from other addresses"; exit 1; }}
printf '%s\n%s\n' "$pass" "$(echo "$line" | cut -d: -f2)" | perl -e 'chomp(my $p = <STDIN>); chomp(my $h = <STDIN>); exit(crypt($p, $h) eq $h ? 0 : 1)' || {{ echo "{user} has another password"; exit 1; }}
grep -qx "{user}: virtual-server" /etc/webmin/webmin.acl || {{ echo "{user} may use other modules"; exit 1; }}
grep -qx rpc=3 /etc/webmin/{user}.acl 2>/dev/null || {{ echo "{user} may use Webmin's pages"; exit 1; }}"#
        )),
        uploads: Vec::new(),
        run: Some(format!(
            r#"set -eu
IFS= read -r pass
hash=$(printf '%s\n' "$pass" | openssl passwd -6 -stdin)
tmp=$(mktemp)
{{ awk -F: -v u={user} '$1 != u' /etc/webmin/miniserv.users; echo "{user}:$hash:0::{allow}"; }} >"$tmp"
cat "$tmp" >/etc/webmin/miniserv.users
{{ awk -F: -v u={user} '$1 != u' /etc/webmin/webmin.acl; echo "{user}: virtual-server"; }} >"$tmp"
cat "$tmp" >/etc/webmin/webmin.acl
rm -f "$tmp"
echo rpc=3 >/etc/webmin/{user}.acl
echo noconfig=0 >/etc/webmin/virtual-server/{user}.acl
chmod 600 /etc/webmin/{user}.acl /etc/webmin/virtual-server/{user}.acl
if [ -f /var/webmin/miniserv.pid ] && kill -0 "$(cat /var/webmin/miniserv.pid)" 2>/dev/null; then /etc/webmin/reload; fi"#
        )),
        reads_password: true,
    }
}

/// The nftables table the firewall step loads: only `allow_from` (and loopback) reach SSH
/// and Webmin; every other port and every other table is left as it is. Loading it again
/// replaces it.
pub fn firewall_rules(spec: &BootstrapSpec) -> String {
    let ports = format!("{}, {}", spec.ssh.port, spec.webmin_port);
    format!(
        "table inet drover\n\
         delete table inet drover\n\
         table inet drover {{\n\
         {}\
         \tchain input {{\n\
         \t\ttype filter hook input priority filter - 1; policy accept;\n\
         \t\tiif \"lo\" accept\n\
         \t\ttcp dport {{ {ports} }} ip saddr @allowed4 accept\n\
         \t\ttcp dport {{ {ports} }} ip6 saddr @allowed6 accept\n\
         \t\ttcp dport {{ {ports} }} drop\n\
         \t}}\n\
         }}",
        allowed_sets(spec)
    )
}

/// drover's addresses as nftables sets, one per family.
fn allowed_sets(spec: &BootstrapSpec) -> String {
    let set = |v4: bool| {
        let family: Vec<String> = spec
            .allow_from
            .iter()
            .filter(|s| s.address.is_ipv4() == v4)
            .map(ToString::to_string)
            .collect();
        if family.is_empty() {
            String::new()
        } else {
            format!("elements = {{ {} }}; ", family.join(", "))
        }
    };
    format!(
        "\tset allowed4 {{ type ipv4_addr; flags interval; {}}}\n\
         \tset allowed6 {{ type ipv6_addr; flags interval; {}}}\n",
        set(true),
        set(false)
    )
}

/// Loads drover's own table once the connection drover runs it over is known to be let in
/// (checked against the same sets in a table that filters nothing); kept across reboots by
/// a unit of drover's own, never by the system's nftables.conf (which flushes every rule).
fn firewall(spec: &BootstrapSpec) -> PlannedStep {
    let ports = format!("{}, {}", spec.ssh.port, spec.webmin_port);
    let rules = firewall_rules(spec);
    let sets = allowed_sets(spec);
    let allowed: Vec<String> = spec.allow_from.iter().map(ToString::to_string).collect();
    let file = "/etc/drover/firewall.nft";
    let unit = "/etc/systemd/system/drover-firewall.service";
    step(
        BootstrapStep::Firewall,
        format!(
            "let only {} reach SSH and Webmin (ports {ports}) with an nftables table of \
             drover's own (other rules untouched; refused if drover's own connection would not \
             be let in), loaded at boot by drover-firewall.service",
            allowed.join(", ")
        ),
        Some(format!(
            r#"[ "$(cat {file} 2>/dev/null)" = '{rules}' ] || {{ echo "the rules are not written yet"; exit 1; }}
nft list table inet drover >/dev/null 2>&1 || {{ echo "the rules are not loaded"; exit 1; }}
[ -f {unit} ] || {{ echo "the rules are not loaded at boot yet"; exit 1; }}"#
        )),
        format!(
            r#"set -eu
command -v nft >/dev/null || {{ apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables; }}
if [ -n "${{SSH_CONNECTION:-}}" ]; then
client=${{SSH_CONNECTION%% *}}
case "$client" in
::ffff:*.*) client=${{client#::ffff:}}; set=allowed4 ;;
*:*) set=allowed6 ;;
*) set=allowed4 ;;
esac
nft -f - <<'EOF'
table inet drover_check
delete table inet drover_check
table inet drover_check {{
{sets}}}
EOF
if ! nft get element inet drover_check "$set" "{{ $client }}" >/dev/null 2>&1; then
nft delete table inet drover_check
echo "drover connects from $client, which allow_from does not hold: these rules would shut it out" >&2
exit 1
fi
nft delete table inet drover_check
fi
mkdir -p /etc/drover /etc/systemd/system
cat >{file}.new <<'EOF'
{rules}
EOF
nft -c -f {file}.new
mv {file}.new {file}
nft -f {file}
cat >{unit} <<'EOF'
[Unit]
Description=drover's firewall rules: SSH and Webmin from drover's addresses only
DefaultDependencies=no
Wants=network-pre.target
Before=network-pre.target shutdown.target
After=nftables.service
PartOf=nftables.service
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/nft -f {file}

[Install]
WantedBy=sysinit.target
EOF
systemctl daemon-reload >/dev/null 2>&1 || true
systemctl enable drover-firewall.service >/dev/null 2>&1 || true"#
        ),
    )
}

fn fail2ban(spec: &BootstrapSpec) -> PlannedStep {
    let ignore: Vec<String> = spec.allow_from.iter().map(ToString::to_string).collect();
    let jails = format!(
        "[DEFAULT]\nignoreip = 127.0.0.1/8 ::1 {}\n\n[sshd]\nenabled = true\nport = {}\n\n\
         [webmin-auth]\nenabled = true\nport = {}",
        ignore.join(" "),
        spec.ssh.port,
        spec.webmin_port
    );
    let file = "/etc/fail2ban/jail.d/drover.conf";
    step(
        BootstrapStep::Fail2ban,
        format!(
            "ban addresses that keep failing to log in to SSH (port {}) or Webmin (port {}) with \
             fail2ban, never drover's",
            spec.ssh.port, spec.webmin_port
        ),
        Some(format!(
            r#"[ "$(cat {file} 2>/dev/null)" = '{jails}' ] || {{ echo "the jails are not written yet"; exit 1; }}
fail2ban-client status webmin-auth >/dev/null 2>&1 || {{ echo "fail2ban is not watching Webmin yet"; exit 1; }}"#
        )),
        format!(
            r#"set -eu
export DEBIAN_FRONTEND=noninteractive
command -v fail2ban-client >/dev/null || {{ apt-get update -qq; apt-get install -y -qq fail2ban rsyslog; }}
cat >{file} <<'EOF'
{jails}
EOF
systemctl enable fail2ban >/dev/null 2>&1 || true
systemctl restart fail2ban 2>/dev/null || service fail2ban restart
for _ in $(seq 1 30); do fail2ban-client status webmin-auth >/dev/null 2>&1 && exit 0; sleep 1; done
echo "fail2ban did not start watching Webmin: see /var/log/fail2ban.log" >&2; exit 1"#
        ),
    )
}

fn start_webmin(spec: &BootstrapSpec) -> PlannedStep {
    let port = spec.webmin_port;
    let answers = format!("curl -sk -o /dev/null https://127.0.0.1:{port}/");
    step(
        BootstrapStep::StartWebmin,
        format!("have Webmin listen on port {port}, start it and wait until it answers there"),
        Some(format!(
            r#"grep -qx "port={port}" /etc/webmin/miniserv.conf || {{ echo "Webmin is set to another port than {port}"; exit 1; }}
{answers} || {{ echo "Webmin does not answer on port {port} yet"; exit 1; }}"#
        )),
        format!(
            r#"if ! grep -qx "port={port}" /etc/webmin/miniserv.conf; then
sed -i 's/^port=.*/port={port}/' /etc/webmin/miniserv.conf
/etc/webmin/restart >/dev/null 2>&1 || true
fi
/etc/webmin/start >/dev/null 2>&1 || /etc/webmin/restart >/dev/null 2>&1 || true
for _ in $(seq 1 60); do {answers} && exit 0; sleep 1; done
echo "Webmin did not answer on port {port}: see /var/webmin/miniserv.error" >&2; tail -n 20 /var/webmin/miniserv.error >&2; exit 1"#
        ),
    )
}

fn read_certificate() -> PlannedStep {
    step(
        BootstrapStep::ReadCertificate,
        "read the SHA-256 of the certificate Webmin presents, from its own file (over SSH, \
         not from the network), to pin it"
            .into(),
        None,
        r#"set -eu
cert=$(sed -n 's/^certfile=//p' /etc/webmin/miniserv.conf)
[ -n "$cert" ] || cert=$(sed -n 's/^keyfile=//p' /etc/webmin/miniserv.conf)
[ -r "$cert" ] || { echo "Webmin's certificate file '$cert' cannot be read" >&2; exit 1; }
openssl x509 -noout -fingerprint -sha256 -in "$cert" | sed 's/^.*=//'"#
            .into(),
    )
}

/// The fingerprint `read-certificate` printed.
pub fn certificate_read(output: &str) -> Result<CertFingerprint, Error> {
    CertFingerprint::parse(output.trim())
}

/// A bootstrap's run as far as it went: each step's state and every command run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BootstrapProgress {
    pub steps: Vec<StepProgress>,
    pub commands: Vec<CommandRecord>,
    /// Read from the server, pinned at registration.
    pub certificate_sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepProgress {
    pub step: BootstrapStep,
    pub state: StepState,
    /// What it found or why it failed.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Waiting,
    Running,
    /// Its check found it done: nothing was changed.
    AlreadyDone,
    Done,
    Failed,
}

/// One command run on the server, as it was sent (secrets go on its standard input, never
/// here), with how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommandRecord {
    pub step: BootstrapStep,
    /// `check`, `upload` or `run`.
    pub kind: String,
    pub command: String,
    /// None: the connection failed before it ended.
    pub exit_status: Option<u32>,
    /// The end of what it printed (its last 2 KB).
    pub output: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub started_at: jiff::Timestamp,
    pub seconds: f64,
}

/// How much of a command's output is kept.
pub const OUTPUT_KEPT: usize = 2048;

/// The end of `output`, at most [`OUTPUT_KEPT`] bytes, cut at a character boundary.
pub fn output_tail(output: &str) -> String {
    if output.len() <= OUTPUT_KEPT {
        return output.to_owned();
    }
    let mut start = output.len() - OUTPUT_KEPT;
    while !output.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &output[start..])
}

impl BootstrapProgress {
    /// Every step of `plan`, waiting.
    pub fn new(plan: &[PlannedStep]) -> Self {
        Self {
            steps: plan
                .iter()
                .map(|p| StepProgress {
                    step: p.step,
                    state: StepState::Waiting,
                    detail: None,
                })
                .collect(),
            commands: Vec::new(),
            certificate_sha256: None,
        }
    }

    pub fn state_of(&self, step: BootstrapStep) -> Option<StepState> {
        self.steps.iter().find(|s| s.step == step).map(|s| s.state)
    }

    pub fn set(&mut self, step: BootstrapStep, state: StepState, detail: Option<String>) {
        if let Some(s) = self.steps.iter_mut().find(|s| s.step == step) {
            s.state = state;
            s.detail = detail;
        }
    }
}

/// Where a bootstrap stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BootstrapState {
    Running,
    Done,
    Failed,
}

impl BootstrapState {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    pub fn parse(input: &str) -> Option<Self> {
        [Self::Running, Self::Done, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> BootstrapSpec {
        serde_json::from_value(serde_json::json!({
            "name": "vm9",
            "host": "vm9.example.net",
            "ssh": {"user": "root", "key": "file:/etc/drover/secrets/vm9.key",
                    "host_key": format!("SHA256:{}", "A".repeat(43))},
            "api_credentials": "file:/etc/drover/secrets/vm9.password",
            "capacity": 100,
            "allow_from": ["192.0.2.10", "2001:db8::/64"],
        }))
        .unwrap()
    }

    fn sources() -> SourceArchives {
        SourceArchives::new(
            "webmin-2.660-d16d9ea205a2.tar.xz",
            "virtualmin-gpl-8.1.0-69a9c2af70eb.tar.xz",
        )
        .unwrap()
    }

    #[test]
    fn the_steps_run_in_order_and_hardening_only_when_asked() {
        let steps = |spec: &BootstrapSpec| -> Vec<BootstrapStep> {
            plan(spec, Some(&sources()))
                .iter()
                .map(|s| s.step)
                .collect()
        };
        use BootstrapStep::*;
        assert_eq!(
            steps(&spec()),
            [
                CheckSystem,
                InstallPackages,
                InstallVirtualmin,
                ConfigureVirtualmin,
                ApiUser,
                StartWebmin,
                ReadCertificate,
                Register,
                FirstHealthCheck
            ]
        );
        let hardened = BootstrapSpec {
            firewall: true,
            fail2ban: true,
            ..spec()
        };
        let all = steps(&hardened);
        assert_eq!(all[5..7], [Firewall, Fail2ban]);
    }

    #[test]
    fn a_local_copy_is_uploaded_checked_and_installed_in_its_versions_folder() {
        let plan = plan(&spec(), Some(&sources()));
        let install = &plan[2];
        assert_eq!(
            install.uploads,
            [
                "webmin-2.660-d16d9ea205a2.tar.xz",
                "virtualmin-gpl-8.1.0-69a9c2af70eb.tar.xz",
                "SHA256SUMS"
            ]
        );
        let run = install.run.as_deref().unwrap();
        assert!(run.contains("sha256sum --quiet -c SHA256SUMS"));
        assert!(run.contains("dir=/usr/local/webmin-2.660"));
        assert!(run.contains("port=10000"));
        assert!(install.check.as_deref().unwrap().contains("remote.cgi"));
        let online = BootstrapSpec {
            install: InstallSource::Online,
            ..spec()
        };
        let plan = super::plan(&online, None);
        assert!(plan[2].uploads.is_empty());
        assert!(
            plan[2]
                .run
                .as_deref()
                .unwrap()
                .contains("virtualmin-install.sh")
        );
    }

    #[test]
    fn the_api_user_is_remote_only_from_drovers_addresses_and_its_password_never_in_a_command() {
        let plan = plan(&spec(), Some(&sources()));
        let user = &plan[4];
        assert!(user.reads_password);
        let run = user.run.as_deref().unwrap();
        // IPv6 colons as Webmin writes them.
        assert!(run.contains("drover:$hash:0::allow 192.0.2.10/32 2001;db8;;/64"));
        assert!(run.contains("echo rpc=3 >/etc/webmin/drover.acl"));
        assert!(run.contains("drover: virtual-server"));
        assert!(run.contains("IFS= read -r pass"));
        // Every step's text is free of secret values: only references.
        for step in &plan {
            for text in [&step.check, &step.run].into_iter().flatten() {
                assert!(!text.contains("vm9.password"), "{text}");
            }
        }
    }

    #[test]
    fn the_firewall_lets_drover_in_by_family_and_refuses_to_run_without_its_addresses() {
        let hardened = BootstrapSpec {
            firewall: true,
            ..spec()
        };
        let plan = plan(&hardened, Some(&sources()));
        let run = plan[5].run.as_deref().unwrap();
        assert!(run.contains(
            "set allowed4 { type ipv4_addr; flags interval; elements = { 192.0.2.10 }; }"
        ));
        assert!(run.contains("elements = { 2001:db8::/64 }"));
        assert!(run.contains("tcp dport { 22, 10000 } drop"));
        let shut_out = BootstrapSpec {
            firewall: true,
            allow_from: Vec::new(),
            ..spec()
        };
        let refused = shut_out.validated().unwrap_err().to_string();
        assert!(refused.contains("allow_from"), "{refused}");
    }

    #[test]
    fn refusals_say_what_is_accepted() {
        let root = BootstrapSpec {
            api_user: "root".into(),
            ..spec()
        };
        assert!(
            root.validated()
                .unwrap_err()
                .to_string()
                .contains("not root")
        );
        let same_port = BootstrapSpec {
            webmin_port: 22,
            ..spec()
        };
        assert!(
            same_port
                .validated()
                .unwrap_err()
                .to_string()
                .contains("not SSH's")
        );
        assert!(AllowedSource::parse("192.0.2.0/33").is_err());
        assert!(AllowedSource::parse("vm.example").is_err());
        assert_eq!(
            AllowedSource::parse(" 10.0.0.0/8 ").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert!(SourceArchives::new("webmin.tar.xz", "v.tar.xz").is_err());
        assert!(spec().validated().is_ok());
    }

    #[test]
    fn kept_output_is_its_end() {
        let long = format!("{}é{}", "x".repeat(3000), "y".repeat(2000));
        let kept = output_tail(&long);
        assert!(kept.len() <= OUTPUT_KEPT + '…'.len_utf8() + 1);
        assert!(kept.ends_with('y'));
        assert_eq!(output_tail("short"), "short");
    }
}
