//! The key store behind stream encryption: 256-bit keys with ids and aliases, kept in
//! `<data-dir>/kms-keys.json` (written atomically). It stands in for KMS: the AWS-managed
//! key `alias/aws/kinesis` always exists, and `rivulet serve --kms-key alias/NAME` adds
//! customer keys. Payloads are sealed with AES-256-GCM under a key's material.
//!
//! Sealed payload: key number u32 LE | 12-byte nonce | ciphertext and 16-byte tag.
//! The key number names the key in this store, so records stay readable after the stream
//! moves to another key.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use serde::{Deserialize, Serialize};

use crate::ids::random_bytes;

pub const AWS_MANAGED_ALIAS: &str = "alias/aws/kinesis";
const SEALED_OVERHEAD: usize = 4 + 12 + 16;

#[derive(Clone, Serialize, Deserialize)]
struct Key {
    number: u32,
    id: String,
    aliases: Vec<String>,
    /// Hex of the 32-byte key material.
    material: String,
}

#[derive(Default, Serialize, Deserialize)]
struct Document {
    keys: Vec<Key>,
}

pub struct KeyStore {
    path: PathBuf,
    region: String,
    account: String,
    keys: RwLock<Vec<Key>>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is not a valid key store")]
    Invalid(PathBuf),
    #[error("no key number {0}")]
    UnknownKey(u32),
    #[error("a sealed payload failed authentication")]
    Tampered,
}

impl KeyStore {
    /// Opens the store, creating the AWS-managed key and one key for each alias in
    /// `aliases` that has none.
    pub fn open(
        data_dir: &Path,
        region: &str,
        account: &str,
        aliases: &[String],
    ) -> Result<KeyStore, KeyError> {
        let path = data_dir.join("kms-keys.json");
        let io_path = path.clone();
        let io = move |source| KeyError::Io {
            path: io_path.clone(),
            source,
        };
        let doc: Document = match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|_| KeyError::Invalid(path.clone()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Document::default(),
            Err(e) => return Err(io(e)),
        };
        let store = KeyStore {
            path,
            region: region.into(),
            account: account.into(),
            keys: RwLock::new(doc.keys),
        };
        let mut wanted = vec![AWS_MANAGED_ALIAS.to_owned()];
        wanted.extend(aliases.iter().cloned());
        let mut changed = false;
        {
            let mut keys = store.keys.write().expect("keys lock");
            for alias in wanted {
                if keys.iter().any(|k| k.aliases.contains(&alias)) {
                    continue;
                }
                let material = random_bytes::<32>().map_err(&io)?;
                let id = uuid_from(random_bytes::<16>().map_err(&io)?);
                let number = keys.len() as u32;
                keys.push(Key {
                    number,
                    id,
                    aliases: vec![alias],
                    material: hex(&material),
                });
                changed = true;
            }
        }
        if changed {
            store.save().map_err(&io)?;
        }
        Ok(store)
    }

    fn save(&self) -> std::io::Result<()> {
        let doc = Document {
            keys: self.keys.read().expect("keys lock").clone(),
        };
        let bytes = serde_json::to_vec_pretty(&doc).map_err(std::io::Error::other)?;
        super::store::write_atomic(&self.path, &bytes)
    }

    /// The key number a KeyId names: a key id, a key ARN, an alias name or an alias ARN of
    /// this account and region.
    pub fn resolve(&self, key_id: &str) -> Option<u32> {
        let prefix = format!("arn:aws:kms:{}:{}:", self.region, self.account);
        let local = key_id.strip_prefix(&prefix).unwrap_or(key_id);
        if key_id.starts_with("arn:") && local == key_id {
            return None; // another account or region
        }
        let keys = self.keys.read().expect("keys lock");
        let found = match local.strip_prefix("key/") {
            Some(id) => keys.iter().find(|k| k.id == id),
            None if local.starts_with("alias/") => {
                keys.iter().find(|k| k.aliases.iter().any(|a| a == local))
            }
            None => keys.iter().find(|k| k.id == local),
        };
        found.map(|k| k.number)
    }

    fn cipher(&self, number: u32) -> Result<Aes256Gcm, KeyError> {
        let keys = self.keys.read().expect("keys lock");
        let key = keys
            .iter()
            .find(|k| k.number == number)
            .ok_or(KeyError::UnknownKey(number))?;
        let material = unhex(&key.material).ok_or_else(|| KeyError::Invalid(self.path.clone()))?;
        Ok(Aes256Gcm::new_from_slice(&material).expect("32-byte key"))
    }

    pub fn seal(&self, number: u32, plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
        let cipher = self.cipher(number)?;
        let nonce = random_bytes::<12>().map_err(|source| KeyError::Io {
            path: "/dev/urandom".into(),
            source,
        })?;
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .map_err(|_| KeyError::Tampered)?;
        let mut out = Vec::with_capacity(SEALED_OVERHEAD + plaintext.len());
        out.extend_from_slice(&number.to_le_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn open_sealed(&self, sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
        if sealed.len() < SEALED_OVERHEAD {
            return Err(KeyError::Tampered);
        }
        let number = u32::from_le_bytes(sealed[..4].try_into().expect("four bytes"));
        let cipher = self.cipher(number)?;
        cipher
            .decrypt(Nonce::from_slice(&sealed[4..16]), &sealed[16..])
            .map_err(|_| KeyError::Tampered)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

fn uuid_from(b: [u8; 16]) -> String {
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_resolves_and_persists() {
        let dir = std::env::temp_dir().join(format!("rivulet-keys-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let store =
            KeyStore::open(&dir, "us-east-1", "000000000000", &["alias/orders".into()]).unwrap();
        let managed = store.resolve(AWS_MANAGED_ALIAS).unwrap();
        let orders = store
            .resolve("arn:aws:kms:us-east-1:000000000000:alias/orders")
            .unwrap();
        assert_ne!(managed, orders);
        assert_eq!(store.resolve("alias/nope"), None);
        assert_eq!(
            store.resolve("arn:aws:kms:eu-west-1:000000000000:alias/orders"),
            None
        );
        let sealed = store.seal(orders, b"secret payload").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        drop(store);
        let store = KeyStore::open(&dir, "us-east-1", "000000000000", &[]).unwrap();
        assert_eq!(store.open_sealed(&sealed).unwrap(), b"secret payload");
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(matches!(
            store.open_sealed(&tampered),
            Err(KeyError::Tampered)
        ));
        fs::remove_dir_all(&dir).unwrap();
    }
}
