//! Account passwords sealed with the operator key (ChaCha20-Poly1305, ring), so a lost server
//! can be rebuilt from drover's data, while the database alone reveals nothing.

use std::path::Path;

use ring::aead::{CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use secrecy::{ExposeSecret, SecretString};

/// Seals and unseals with one 256-bit key.
pub struct Sealer {
    key: LessSafeKey,
    id: String,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the operator key must be 64 hex digits (32 bytes)")]
    BadKey,
    #[error("cannot read or create the operator key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("a sealed password does not open with this operator key (wrong key, or altered data)")]
    Open,
    #[error(
        "the operator key file {path} is missing, and this database's passwords are sealed with \
         key {recorded}: point DROVER_SEAL_KEY_FILE at that key (or run where drover.key is); \
         a new key would seal passwords no other process can open"
    )]
    MissingKey { path: String, recorded: String },
    #[error(
        "the operator key {found} ({source_name}) is not the key this database's passwords are \
         sealed with ({recorded}): point DROVER_SEAL_KEY_FILE or DROVER_SEAL_KEY at that key"
    )]
    WrongKey {
        found: String,
        source_name: String,
        recorded: String,
    },
    #[error(transparent)]
    Store(#[from] drover_store::StoreError),
}

impl Sealer {
    pub fn from_hex(hex_key: &str) -> Result<Self, SealError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_key.trim(), &mut bytes).map_err(|_| SealError::BadKey)?;
        let key = UnboundKey::new(&CHACHA20_POLY1305, &bytes).map_err(|_| SealError::BadKey)?;
        Ok(Self {
            key: LessSafeKey::new(key),
            id: key_id(&bytes),
        })
    }

    /// The key's id: a fingerprint that names it in messages and in the database without
    /// revealing it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Reads the key file, creating it (readable by its owner only) with a new random key the
    /// first time. Two processes starting at once make one key: the new key is written aside
    /// and linked into place, which fails if another got there first.
    pub fn from_file(path: &Path) -> Result<Self, SealError> {
        let fail = |reason: String| SealError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        if !path.exists() {
            let key: [u8; 32] = rand::random();
            let mut aside = path.as_os_str().to_owned();
            aside.push(format!(".new-{}", std::process::id()));
            let aside = std::path::PathBuf::from(aside);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let written = options.open(&aside).and_then(|mut file| {
                std::io::Write::write_all(&mut file, hex::encode(key).as_bytes())?;
                file.sync_all()
            });
            let linked = written.and_then(|()| match std::fs::hard_link(&aside, path) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                other => other,
            });
            let _ = std::fs::remove_file(&aside);
            linked.map_err(|e| fail(e.to_string()))?;
        }
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        Self::from_hex(&text)
    }

    /// Nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, secret: &SecretString) -> Vec<u8> {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let mut data = secret.expose_secret().as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                ring::aead::Aad::empty(),
                &mut data,
            )
            .expect("sealing a short password cannot fail");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&data);
        out
    }

    pub fn open(&self, sealed: &[u8]) -> Result<SecretString, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, data) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut data = data.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, ring::aead::Aad::empty(), &mut data)
            .map_err(|_| SealError::Open)?;
        String::from_utf8(plain.to_vec())
            .map(SecretString::from)
            .map_err(|_| SealError::Open)
    }
}

fn key_id(key: &[u8; 32]) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        &[b"drover operator key id\0".as_slice(), key].concat(),
    );
    format!("key:{}", hex::encode(&digest.as_ref()[..8]))
}

/// The operator key a process seals and opens with, checked against the one the database's
/// passwords are sealed with: a process pointed at another key, or at a key file that is not
/// there, refuses at its start instead of sealing what no other process can open. The first
/// process on a new database (or on one from before keys had ids, whose passwords must open
/// with it) makes the key file if needed and records its key's id.
pub async fn operator_key(
    store: &dyn drover_store::Store,
    key: &crate::config::SealKey,
) -> Result<Sealer, SealError> {
    let Checked {
        sealer,
        recorded,
        source_name,
    } = check(store, key, true).await?;
    let sealer = sealer.expect("a key is made when missing");
    if recorded.is_none() {
        let recorded = store.record_seal_key_id(&sealer.id).await?;
        if recorded != sealer.id {
            return Err(SealError::WrongKey {
                found: sealer.id.clone(),
                source_name,
                recorded,
            });
        }
    }
    Ok(sealer)
}

/// As [`operator_key`], changing nothing (no key file made, no id recorded): for looking.
/// `None` when there is no key yet and nothing needs one (the first start makes it).
pub async fn look_at_operator_key(
    store: &dyn drover_store::Store,
    key: &crate::config::SealKey,
) -> Result<Option<Sealer>, SealError> {
    Ok(check(store, key, false).await?.sealer)
}

struct Checked {
    sealer: Option<Sealer>,
    recorded: Option<String>,
    source_name: String,
}

async fn check(
    store: &dyn drover_store::Store,
    key: &crate::config::SealKey,
    make: bool,
) -> Result<Checked, SealError> {
    use crate::config::SealKey;
    let recorded = store.seal_key_id().await?;
    let (sealer, source_name) = match key {
        SealKey::Hex(hex_key) => (
            Sealer::from_hex(hex_key.expose_secret())?,
            "DROVER_SEAL_KEY".to_owned(),
        ),
        SealKey::File(path) => {
            if !path.exists() {
                let missing = |recorded: String| SealError::MissingKey {
                    path: path.display().to_string(),
                    recorded,
                };
                if let Some(recorded) = &recorded {
                    return Err(missing(recorded.clone()));
                }
                if store.any_sealed_password().await?.is_some() {
                    return Err(missing("a key it has not recorded".to_owned()));
                }
                if !make {
                    return Ok(Checked {
                        sealer: None,
                        recorded,
                        source_name: path.display().to_string(),
                    });
                }
            }
            (Sealer::from_file(path)?, path.display().to_string())
        }
    };
    let wrong = |recorded: String| SealError::WrongKey {
        found: sealer.id.clone(),
        source_name: source_name.clone(),
        recorded,
    };
    match &recorded {
        Some(recorded) if *recorded != sealer.id => return Err(wrong(recorded.clone())),
        Some(_) => {}
        None => {
            if let Some(sealed) = store.any_sealed_password().await?
                && sealer.open(&sealed).is_err()
            {
                return Err(wrong("another key, not recorded".to_owned()));
            }
        }
    }
    Ok(Checked {
        sealer: Some(sealer),
        recorded,
        source_name,
    })
}

/// A new random account password: 24 letters and digits.
pub fn new_password() -> SecretString {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let password: String = (0..24)
        .map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]))
        .collect();
    SecretString::from(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_password_opens_only_with_its_key() {
        let sealer = Sealer::from_hex(&"11".repeat(32)).unwrap();
        let password = new_password();
        let sealed = sealer.seal(&password);
        assert!(
            !sealed
                .windows(24)
                .any(|w| w == password.expose_secret().as_bytes())
        );
        assert_eq!(
            sealer.open(&sealed).unwrap().expose_secret(),
            password.expose_secret()
        );
        let other = Sealer::from_hex(&"22".repeat(32)).unwrap();
        assert!(matches!(other.open(&sealed), Err(SealError::Open)));
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(sealer.open(&altered).is_err());
        assert!(Sealer::from_hex("abc").is_err());
    }

    #[test]
    fn the_key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drover.key");
        let first = Sealer::from_file(&path).unwrap();
        let sealed = first.seal(&SecretString::from("pw".to_owned()));
        let again = Sealer::from_file(&path).unwrap();
        assert_eq!(again.open(&sealed).unwrap().expose_secret(), "pw");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
