//! Reading the secrets that servers and DNS providers refer to, only from where an operator
//! allowed (`DROVER_SECRETS_DIR`, `DROVER_SECRET_ENV_PREFIX`), and never drover's own files.

use std::path::PathBuf;

use drover_core::{CredentialRef, SecretSources};
use secrecy::SecretString;

#[derive(Debug, Clone)]
pub struct Secrets {
    sources: SecretSources,
    /// drover's key and database: never read as a secret, whatever link leads to them.
    own_files: Vec<PathBuf>,
}

impl Secrets {
    pub fn new(sources: SecretSources, own_files: Vec<PathBuf>) -> Self {
        Self { sources, own_files }
    }

    pub fn sources(&self) -> &SecretSources {
        &self.sources
    }

    /// As [`Secrets::read`]; a `file:` reference to a file that does not exist yet is first
    /// filled with a new random password (readable by drover's user only), so that an
    /// operator never has to invent one for a server drover sets up itself.
    pub fn read_or_create(&self, reference: &CredentialRef) -> Result<SecretString, String> {
        self.sources.check(reference).map_err(|e| e.to_string())?;
        if let CredentialRef::File(path) = reference
            && !std::path::Path::new(path).exists()
        {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut bytes = [0u8; 24];
            rand::fill(&mut bytes);
            let parent = std::path::Path::new(path)
                .parent()
                .ok_or_else(|| format!("{path} has no folder"))?;
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("the folder of {path} cannot be made: {e}"))?;
            // Written whole beside it, then linked in place: a crash leaves no empty secret,
            // and a file made meanwhile by someone else is read, never overwritten.
            let mut tag = [0u8; 8];
            rand::fill(&mut tag);
            let fresh = format!("{path}.new-{}", hex::encode(tag));
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&fresh)
                .and_then(|mut file| {
                    file.write_all(format!("{}\n", hex::encode(bytes)).as_bytes())?;
                    file.sync_all()
                })
                .map_err(|e| {
                    let _ = std::fs::remove_file(&fresh);
                    format!("{fresh} cannot be written: {e}")
                })?;
            let linked = std::fs::hard_link(&fresh, path);
            let _ = std::fs::remove_file(&fresh);
            match linked {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(format!("{path} cannot be made: {e}")),
            }
        }
        let secret = self.read(reference)?;
        if secrecy::ExposeSecret::expose_secret(&secret).is_empty() {
            return Err(format!("{reference} is empty"));
        }
        Ok(secret)
    }

    /// The secret `reference` points at; the message says why it cannot be had.
    pub fn read(&self, reference: &CredentialRef) -> Result<SecretString, String> {
        self.sources.check(reference).map_err(|e| e.to_string())?;
        match reference {
            CredentialRef::Env(name) => std::env::var(name).map(SecretString::from).map_err(|_| {
                format!("its secret variable {name} is not set in drover's environment")
            }),
            CredentialRef::File(path) => {
                // A link below the directory may lead anywhere: what it reaches must be below
                // the directory too.
                let real = std::fs::canonicalize(path)
                    .map_err(|e| format!("its secret file {path} cannot be read: {e}"))?;
                let dir = std::fs::canonicalize(&self.sources.dir).map_err(|e| {
                    format!(
                        "the secrets directory {} cannot be read: {e}",
                        self.sources.dir.display()
                    )
                })?;
                let own = self
                    .own_files
                    .iter()
                    .any(|f| std::fs::canonicalize(f).is_ok_and(|f| f == real));
                if own || !real.starts_with(&dir) {
                    return Err(format!(
                        "its secret file {path} leads to {}, which drover does not read as a \
                         secret (only files below {} that are not drover's own)",
                        real.display(),
                        dir.display()
                    ));
                }
                std::fs::read_to_string(&real)
                    .map(|p| SecretString::from(p.trim_end_matches(['\n', '\r']).to_owned()))
                    .map_err(|e| format!("its secret file {path} cannot be read: {e}"))
            }
        }
    }
}
