//! Field transforms: what a column does to its field's value on the way in, the same
//! on the snapshot, the change path, `replay` and `verify`, since all of them map
//! documents through [`crate::mapping::TablePlan::row`].
//!
//! A column's `transform` is one step or a list applied in order
//! (`[{ kind = "trim" }, { kind = "lowercase" }, { kind = "hash", key = "pii" }]`).
//! A step reads text or bytes: a string is its text, a binary its bytes, an ObjectId
//! its hex, an integer its digits; a missing or null field stays NULL. A value a step
//! refuses (bad ciphertext, a wrong key, a pattern that must match and does not) is a
//! reject naming the field and the reason, never the value. Keys are named, not
//! given ([`keys`]).

pub mod cipher;
pub mod keys;
mod one_or_many;

use bson::RawBsonRef;
use hmac::{KeyInit as _, Mac as _};
use serde::{Deserialize, Serialize};

use crate::cell::{type_name, Cell};
use crate::column_type::ColumnType;
use cipher::SourceCipher;
use keys::{KeyError, Keyring, Secret};

pub use one_or_many::one_or_many;

/// One step of a column's transform, as the mapping writes it (`kind = "..."`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Transform {
    /// HMAC-SHA-256 under a key: equal values give equal digests, so joins on them
    /// still work, and without the key a digest cannot be matched to a guess. Lowercase
    /// hex in a text column, 32 bytes in a bytea one.
    Hash {
        /// The key's name in `[keys]`.
        key: String,
    },
    /// The value is dropped: the column is NULL.
    Redact,
    /// Every character but the last `keep` becomes `with`.
    Mask {
        /// How many trailing characters stay.
        #[serde(default = "default_keep")]
        keep: usize,
        /// The character the others become.
        #[serde(default = "default_mask")]
        with: char,
    },
    /// Lowercase (Unicode).
    Lowercase,
    /// Leading and trailing white space removed.
    Trim,
    /// AES-256-GCM under a key, a fresh nonce per value (see [`cipher`]): a bytea
    /// column.
    Encrypt {
        /// The key's name in `[keys]`.
        key: String,
    },
    /// Decrypted as the source encrypted it, encrypted as `encrypt` does: a bytea
    /// column.
    Reencrypt {
        /// How the source encrypted it.
        from: SourceCipher,
        /// The target key's name in `[keys]`.
        key: String,
    },
    /// Every match of a regular expression replaced (`$1` names a group); with
    /// `required`, a value without a match is a reject.
    Replace {
        /// The regular expression (Rust's `regex` syntax).
        pattern: String,
        /// The replacement.
        with: String,
        /// Whether a value must match.
        #[serde(default)]
        required: bool,
    },
}

fn default_keep() -> usize {
    4
}

fn default_mask() -> char {
    '*'
}

impl Transform {
    /// The keys the step uses.
    pub fn keys(&self) -> Vec<&str> {
        match self {
            Transform::Hash { key } | Transform::Encrypt { key } => vec![key],
            Transform::Reencrypt { from, key } => vec![&from.key, key],
            _ => Vec::new(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Transform::Hash { .. } => "hash",
            Transform::Redact => "redact",
            Transform::Mask { .. } => "mask",
            Transform::Lowercase => "lowercase",
            Transform::Trim => "trim",
            Transform::Encrypt { .. } => "encrypt",
            Transform::Reencrypt { .. } => "reencrypt",
            Transform::Replace { .. } => "replace",
        }
    }
}

/// Why a column's transform cannot work, found before anything lands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// A step's output does not fit the column.
    #[error("{step} gives {gives}, so the column must be type = \"{wants}\"")]
    Type {
        /// The last step.
        step: &'static str,
        /// What it gives.
        gives: &'static str,
        /// The type it needs.
        wants: &'static str,
    },
    /// A pattern that does not compile.
    #[error("replace: pattern {pattern:?}: {reason}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// The regex crate's words.
        reason: String,
    },
    /// A key that cannot be had.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// A value between steps.
enum Value {
    Text(String),
    Bytes(Vec<u8>),
}

/// A compiled step, its keys read.
enum Step {
    /// The MAC with its key's pads hashed once, cloned per value.
    Hash(hmac::Hmac<sha2::Sha256>),
    Redact,
    Mask {
        keep: usize,
        with: char,
    },
    Lowercase,
    Trim,
    Encrypt(cipher::Sealer),
    Reencrypt {
        from: SourceCipher,
        from_key: Secret,
        key: cipher::Sealer,
    },
    Replace {
        pattern: regex::Regex,
        with: String,
        required: bool,
    },
}

/// A column's transform, compiled: its patterns built and keys read.
pub struct Chain {
    steps: Vec<Step>,
    /// The last step is a hash into a bytea column: its raw digest.
    raw_digest: bool,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Chain({} steps)", self.steps.len())
    }
}

/// What a step gives, for the column type check.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Gives {
    Text,
    Bytes,
    Null,
}

/// Checks that `transforms` can fill a column of `ty`, without reading any key.
///
/// # Errors
/// [`ChainError`] naming the step and what it needs.
pub fn check(transforms: &[Transform], ty: ColumnType) -> Result<(), ChainError> {
    let mut gives = None;
    for (i, step) in transforms.iter().enumerate() {
        let last = i + 1 == transforms.len();
        gives = Some(match step {
            Transform::Redact => Gives::Null,
            Transform::Hash { .. } if last && ty == ColumnType::Bytea => Gives::Bytes,
            Transform::Encrypt { .. } | Transform::Reencrypt { .. } => Gives::Bytes,
            Transform::Replace { pattern, .. } => {
                regex::Regex::new(pattern).map_err(|e| ChainError::Pattern {
                    pattern: pattern.clone(),
                    reason: e.to_string().lines().last().unwrap_or_default().to_string(),
                })?;
                Gives::Text
            }
            _ => Gives::Text,
        });
    }
    let step = transforms.last().map_or("", Transform::name);
    match gives {
        Some(Gives::Text) if ty != ColumnType::Text => Err(ChainError::Type {
            step,
            gives: "text",
            wants: "text",
        }),
        Some(Gives::Bytes) if ty != ColumnType::Bytea => Err(ChainError::Type {
            step,
            gives: "bytes",
            wants: "bytea",
        }),
        _ => Ok(()),
    }
}

impl Chain {
    /// Compiles `transforms` for a column of `ty` with the keys of `keyring`.
    ///
    /// # Errors
    /// [`ChainError`] when a step does not fit or a key is not in the keyring.
    pub fn compile(
        transforms: &[Transform],
        ty: ColumnType,
        keyring: &Keyring,
    ) -> Result<Self, ChainError> {
        check(transforms, ty)?;
        let steps = transforms
            .iter()
            .map(|t| {
                Ok(match t {
                    Transform::Hash { key } => Step::Hash(
                        hmac::Hmac::<sha2::Sha256>::new_from_slice(keyring.get(key)?.bytes())
                            .expect("HMAC takes keys of any length"),
                    ),
                    Transform::Redact => Step::Redact,
                    Transform::Mask { keep, with } => Step::Mask {
                        keep: *keep,
                        with: *with,
                    },
                    Transform::Lowercase => Step::Lowercase,
                    Transform::Trim => Step::Trim,
                    Transform::Encrypt { key } => {
                        Step::Encrypt(cipher::Sealer::new(keyring.get(key)?))
                    }
                    Transform::Reencrypt { from, key } => Step::Reencrypt {
                        from: from.clone(),
                        from_key: keyring.get(&from.key)?,
                        key: cipher::Sealer::new(keyring.get(key)?),
                    },
                    Transform::Replace {
                        pattern,
                        with,
                        required,
                    } => Step::Replace {
                        pattern: regex::Regex::new(pattern).map_err(|e| ChainError::Pattern {
                            pattern: pattern.clone(),
                            reason: e.to_string(),
                        })?,
                        with: with.clone(),
                        required: *required,
                    },
                })
            })
            .collect::<Result<Vec<_>, ChainError>>()?;
        Ok(Chain {
            raw_digest: ty == ColumnType::Bytea
                && matches!(transforms.last(), Some(Transform::Hash { .. })),
            steps,
        })
    }

    /// The key the values are sealed with when the last step encrypts: such values
    /// compare by their plaintext, since every encryption draws a fresh nonce.
    pub fn sealed_with(&self) -> Option<&Secret> {
        match self.steps.last()? {
            Step::Encrypt(sealer) | Step::Reencrypt { key: sealer, .. } => Some(sealer.key()),
            _ => None,
        }
    }

    /// The cell for a field's value. The reason of a refusal names the step, never
    /// the value.
    ///
    /// # Errors
    /// Why the value cannot be transformed.
    pub fn apply(&self, value: Option<RawBsonRef<'_>>) -> Result<Cell, String> {
        let mut current = match value {
            None | Some(RawBsonRef::Null | RawBsonRef::Undefined) => return Ok(Cell::Null),
            Some(RawBsonRef::String(s)) => Value::Text(s.to_string()),
            Some(RawBsonRef::Binary(b)) => Value::Bytes(b.bytes.to_vec()),
            Some(RawBsonRef::ObjectId(id)) => Value::Text(crate::extjson::object_id_hex(&id)),
            Some(RawBsonRef::Int32(n)) => Value::Text(n.to_string()),
            Some(RawBsonRef::Int64(n)) => Value::Text(n.to_string()),
            Some(other) => {
                return Err(format!(
                    "transforms read strings, binaries, ObjectIds and integers, not {}",
                    type_name(other)
                ))
            }
        };
        let last = self.steps.len().saturating_sub(1);
        for (i, step) in self.steps.iter().enumerate() {
            current = match step {
                Step::Redact => return Ok(Cell::Null),
                Step::Hash(keyed) => {
                    let mut mac = keyed.clone();
                    mac.update(bytes(&current));
                    let digest = mac.finalize().into_bytes();
                    if i == last && self.raw_digest {
                        Value::Bytes(digest.to_vec())
                    } else {
                        Value::Text(hex::encode(digest))
                    }
                }
                Step::Encrypt(sealer) => Value::Bytes(sealer.seal(bytes(&current))),
                Step::Reencrypt {
                    from,
                    from_key,
                    key,
                } => {
                    let sealed = match &current {
                        Value::Text(text) => cipher::decode(from.encoding, text),
                        Value::Bytes(b) => Ok(b.clone()),
                    }
                    .and_then(|data| cipher::open(from.cipher, from.nonce, from_key, &data))
                    .map_err(|e| format!("reencrypt: {e}"))?;
                    let plain = zeroize::Zeroizing::new(sealed);
                    Value::Bytes(key.seal(&plain))
                }
                Step::Mask { keep, with } => {
                    let text = text(current, "mask")?;
                    let n = text.chars().count();
                    Value::Text(
                        text.chars()
                            .enumerate()
                            .map(|(i, c)| if i + keep < n { *with } else { c })
                            .collect(),
                    )
                }
                Step::Lowercase => Value::Text(text(current, "lowercase")?.to_lowercase()),
                Step::Trim => Value::Text(text(current, "trim")?.trim().to_string()),
                Step::Replace {
                    pattern,
                    with,
                    required,
                } => {
                    let text = text(current, "replace")?;
                    if *required && !pattern.is_match(&text) {
                        return Err(format!(
                            "replace: the value does not match the required pattern {:?}",
                            pattern.as_str()
                        ));
                    }
                    Value::Text(pattern.replace_all(&text, with.as_str()).into_owned())
                }
            };
        }
        Ok(match current {
            Value::Text(text) => Cell::Text(text),
            Value::Bytes(bytes) => Cell::Bytea(bytes),
        })
    }
}

/// The document `raw` without the fields at `paths` (dotted): what rejects and dead
/// letters of a transformed collection keep. Nothing when it cannot be read, since
/// what cannot be read cannot be cut either.
pub fn withhold(raw: &[u8], paths: &[String]) -> Vec<u8> {
    let Ok(mut doc) = bson::Document::from_reader(raw) else {
        return Vec::new();
    };
    for path in paths {
        let parts: Vec<&str> = path.split('.').collect();
        remove_path(&mut doc, &parts);
    }
    doc.to_vec().unwrap_or_default()
}

/// Removes the field at `parts` from `doc`, through subdocuments and through every
/// element of the arrays on the way (a child table's field is in each element).
fn remove_path(doc: &mut bson::Document, parts: &[&str]) {
    match parts {
        [] => {}
        [last] => {
            doc.remove(*last);
        }
        [first, rest @ ..] => match doc.get_mut(*first) {
            Some(bson::Bson::Document(inner)) => remove_path(inner, rest),
            Some(bson::Bson::Array(items)) => {
                for item in items {
                    if let bson::Bson::Document(inner) = item {
                        remove_path(inner, rest);
                    }
                }
            }
            _ => {}
        },
    }
}

fn bytes(value: &Value) -> &[u8] {
    match value {
        Value::Text(text) => text.as_bytes(),
        Value::Bytes(bytes) => bytes,
    }
}

fn text(value: Value, step: &str) -> Result<String, String> {
    match value {
        Value::Text(text) => Ok(text),
        Value::Bytes(bytes) => String::from_utf8(bytes)
            .map_err(|_| format!("{step} reads text, and the bytes are not UTF-8")),
    }
}

#[cfg(test)]
mod tests;
