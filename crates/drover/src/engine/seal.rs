//! Account passwords sealed with the operator key (ChaCha20-Poly1305, ring), so a lost server
//! can be rebuilt from drover's data, while the database alone reveals nothing.

use std::path::Path;

use ring::aead::{CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use secrecy::{ExposeSecret, SecretString};

/// Seals and unseals with one 256-bit key.
pub struct Sealer {
    key: LessSafeKey,
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
}

impl Sealer {
    pub fn from_hex(hex_key: &str) -> Result<Self, SealError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_key.trim(), &mut bytes).map_err(|_| SealError::BadKey)?;
        let key = UnboundKey::new(&CHACHA20_POLY1305, &bytes).map_err(|_| SealError::BadKey)?;
        Ok(Self {
            key: LessSafeKey::new(key),
        })
    }

    /// Reads the key file, creating it (readable by its owner only) with a new random key the
    /// first time.
    pub fn from_file(path: &Path) -> Result<Self, SealError> {
        let fail = |reason: String| SealError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        if !path.exists() {
            let key: [u8; 32] = rand::random();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).map_err(|e| fail(e.to_string()))?;
            std::io::Write::write_all(&mut file, hex::encode(key).as_bytes())
                .map_err(|e| fail(e.to_string()))?;
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
