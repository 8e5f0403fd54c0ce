//! The keys transforms use: named in the mapping by where they are (an environment
//! variable or a file), never by their value, so a mapping can be recorded with the
//! run, printed and committed; read by the processes that transform.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The length of every key: AES-256, ChaCha20 and Salsa20 take 32 bytes, and an
/// HMAC-SHA-256 key of the hash's size.
pub const KEY_BYTES: usize = 32;

/// Where a key is (`[keys] pii = { env = "PII_KEY" }`): exactly one of the two.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeySource {
    /// An environment variable holding the key as 64 hex digits or base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// A file holding the key as 64 hex digits, base64, or its 32 bytes; relative to
    /// the working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

/// A key's bytes: wiped when dropped, never printed.
#[derive(Clone)]
pub struct Secret(Arc<Zeroizing<Vec<u8>>>);

impl Secret {
    /// The key's bytes, for a cipher.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// A key of these bytes (tests, and keys read here).
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(Arc::new(Zeroizing::new(bytes)))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Why a key cannot be read; says where it was looked for, never what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A transform names a key `[keys]` does not.
    #[error("key {0:?} is not in [keys]")]
    Unknown(String),
    /// The process did not read the keys (see `MappingFile::unlock`).
    #[error("the mapping's keys were not read by this process, so the value is not transformed and does not land")]
    NotRead,
    /// Neither or both of `env` and `file`.
    #[error("key {0:?}: give exactly one of env = \"VARIABLE\" or file = \"path\"")]
    Source(String),
    /// The variable is not set.
    #[error("key {name:?}: the environment variable {variable} is not set")]
    Unset {
        /// The key.
        name: String,
        /// The variable.
        variable: String,
    },
    /// The file cannot be read.
    #[error("key {name:?}: cannot read {file}: {reason}")]
    File {
        /// The key.
        name: String,
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// The value is not a 32-byte key in any accepted form.
    #[error(
        "key {0:?} is not {KEY_BYTES} bytes written as 64 hex digits, base64, or (in a file) raw"
    )]
    Malformed(String),
}

/// The keys a mapping names, read.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: BTreeMap<String, Secret>,
}

impl Keyring {
    /// Reads every key of `sources`.
    ///
    /// # Errors
    /// The first key that cannot be read, and where it was looked for.
    pub fn read(sources: &BTreeMap<String, KeySource>) -> Result<Self, KeyError> {
        let mut keys = BTreeMap::new();
        for (name, source) in sources {
            keys.insert(name.clone(), read_one(name, source)?);
        }
        Ok(Keyring { keys })
    }

    /// A key by name.
    ///
    /// # Errors
    /// [`KeyError::Unknown`] when the mapping's `[keys]` does not name it.
    pub fn get(&self, name: &str) -> Result<Secret, KeyError> {
        self.keys
            .get(name)
            .cloned()
            .ok_or_else(|| KeyError::Unknown(name.to_string()))
    }

    /// A keyring of the given keys (tests).
    pub fn of(keys: impl IntoIterator<Item = (String, Secret)>) -> Self {
        Keyring {
            keys: keys.into_iter().collect(),
        }
    }
}

fn read_one(name: &str, source: &KeySource) -> Result<Secret, KeyError> {
    let raw: Zeroizing<Vec<u8>> = match (&source.env, &source.file) {
        (Some(variable), None) => match std::env::var(variable) {
            Ok(value) => Zeroizing::new(value.into_bytes()),
            Err(_) => {
                return Err(KeyError::Unset {
                    name: name.to_string(),
                    variable: variable.clone(),
                })
            }
        },
        (None, Some(file)) => Zeroizing::new(std::fs::read(file).map_err(|e| KeyError::File {
            name: name.to_string(),
            file: file.display().to_string(),
            reason: e.kind().to_string(),
        })?),
        _ => return Err(KeyError::Source(name.to_string())),
    };
    decode(&raw).ok_or_else(|| KeyError::Malformed(name.to_string()))
}

/// A key from 64 hex digits, base64 of 32 bytes, or 32 raw bytes.
fn decode(raw: &[u8]) -> Option<Secret> {
    let text = std::str::from_utf8(raw).map(str::trim).unwrap_or("");
    let written = [
        hex::decode(text).ok(),
        base64::engine::general_purpose::STANDARD.decode(text).ok(),
    ];
    written
        .into_iter()
        .flatten()
        .chain([raw.to_vec()])
        .find(|bytes| bytes.len() == KEY_BYTES)
        .map(Secret::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_as_hex_base64_or_raw_and_never_shown() {
        let hex = "00".repeat(31) + "2a";
        assert_eq!(decode(hex.as_bytes()).expect("hex").bytes()[31], 42);
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(
            decode(format!("{b64}\n").as_bytes()).expect("b64").bytes(),
            [7u8; 32]
        );
        assert_eq!(decode(&[9u8; 32]).expect("raw").bytes(), [9u8; 32]);
        assert!(decode(b"short").is_none());
        assert_eq!(format!("{:?}", decode(&[9u8; 32])), "Some(Secret(..))");
    }

    #[test]
    fn a_missing_key_names_where_it_was_looked_for() {
        let sources = BTreeMap::from([(
            "pii".to_string(),
            KeySource {
                env: Some("M2P_TEST_SURELY_UNSET_KEY".to_string()),
                file: None,
            },
        )]);
        assert_eq!(
            Keyring::read(&sources).expect_err("unset").to_string(),
            "key \"pii\": the environment variable M2P_TEST_SURELY_UNSET_KEY is not set"
        );
    }
}
