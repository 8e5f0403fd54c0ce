//! The ciphers of `encrypt` and `reencrypt`, from RustCrypto's crates.
//!
//! What lands is AES-256-GCM, laid out as `nonce (12 bytes) ‖ ciphertext ‖ tag (16
//! bytes)` with a fresh random nonce per value: PostgreSQL's pgcrypto, Python's
//! `cryptography` or Go's `crypto/cipher` open it with the key. `reencrypt` opens a
//! value the source encrypted with one of [`CipherKind`], laid out as the mapping
//! says ([`SourceCipher`]).

use aes_gcm::aead::Nonce;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::Aes256Gcm;
use cbc::cipher::{block_padding::Pkcs7, BlockModeDecrypt, KeyIvInit, StreamCipher};
use serde::{Deserialize, Serialize};

use super::keys::Secret;

/// AES-GCM's nonce length.
const GCM_NONCE: usize = 12;
/// AES-GCM's tag length.
const GCM_TAG: usize = 16;

/// How the source encrypted a field (`reencrypt`'s `from`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceCipher {
    /// The cipher.
    pub cipher: CipherKind,
    /// The key's name in `[keys]`.
    pub key: String,
    /// Where the nonce (the IV for CBC) is: before the ciphertext or after it.
    #[serde(default)]
    pub nonce: NoncePosition,
    /// How a string value holds the bytes; a binary value is the bytes.
    #[serde(default)]
    pub encoding: Encoding,
}

/// The ciphers `reencrypt` opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CipherKind {
    /// AES-256-GCM: a 12-byte nonce, the 16-byte tag after the ciphertext.
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
    /// AES-256-CBC with PKCS#7 padding: a 16-byte IV.
    #[serde(rename = "aes-256-cbc")]
    Aes256Cbc,
    /// ChaCha20 (RFC 8439): a 12-byte nonce, no tag.
    #[serde(rename = "chacha20")]
    ChaCha20,
    /// Salsa20: an 8-byte nonce, no tag.
    #[serde(rename = "salsa20")]
    Salsa20,
}

impl CipherKind {
    fn nonce_len(self) -> usize {
        match self {
            CipherKind::Aes256Gcm | CipherKind::ChaCha20 => 12,
            CipherKind::Aes256Cbc => 16,
            CipherKind::Salsa20 => 8,
        }
    }
}

/// Where a ciphertext's nonce is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NoncePosition {
    /// `nonce ‖ ciphertext`.
    #[default]
    Prefix,
    /// `ciphertext ‖ nonce`.
    Suffix,
}

/// How a string holds a ciphertext.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Standard base64, with padding.
    #[default]
    Base64,
    /// Hex digits.
    Hex,
}

/// Why a value cannot be opened; never holds the value or the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The string is not in the stated encoding.
    #[error("the value is not {0:?}-encoded")]
    Encoding(Encoding),
    /// Too short to hold a nonce (and a tag).
    #[error("the value is {0} bytes, too short for the cipher's nonce")]
    Short(usize),
    /// The key did not open it: a wrong key, a wrong layout, or altered bytes.
    #[error("the value does not decrypt with this key and layout (a wrong key, nonce position or cipher, or altered bytes)")]
    Failed,
}

/// AES-256-GCM under one key, its key schedule made once: what `encrypt` and
/// `reencrypt` seal with.
#[derive(Clone)]
pub struct Sealer {
    key: Secret,
    cipher: Aes256Gcm,
}

impl Sealer {
    /// A sealer for `key` (32 bytes, as every key of the keyring).
    pub fn new(key: Secret) -> Self {
        let cipher = Aes256Gcm::new_from_slice(key.bytes()).expect("keys are 32 bytes");
        Sealer { key, cipher }
    }

    /// The key, to open what it sealed.
    pub fn key(&self) -> &Secret {
        &self.key
    }

    /// Encrypts `plaintext` under a fresh random nonce from the thread's CSPRNG
    /// (ChaCha, seeded from the operating system): a system call per value cost more
    /// than the encryption itself.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0_u8; GCM_NONCE];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
        let sealed = self
            .cipher
            .encrypt(&Nonce::<Aes256Gcm>::from(nonce), plaintext)
            .expect("AES-GCM encrypts any value shorter than 64 GiB");
        let mut out = Vec::with_capacity(GCM_NONCE + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

/// Opens what [`Sealer::seal`] made (verify compares plaintexts; tests check values).
///
/// # Errors
/// [`OpenError`] when it is too short or does not authenticate under `key`.
pub fn open_sealed(key: &Secret, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
    open(CipherKind::Aes256Gcm, NoncePosition::Prefix, key, sealed)
}

/// The bytes of a source ciphertext held in a string.
///
/// # Errors
/// [`OpenError::Encoding`] when the string is not in `encoding`.
pub fn decode(encoding: Encoding, text: &str) -> Result<Vec<u8>, OpenError> {
    use base64::Engine as _;
    let text = text.trim();
    match encoding {
        Encoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| OpenError::Encoding(encoding)),
        Encoding::Hex => hex::decode(text).map_err(|_| OpenError::Encoding(encoding)),
    }
}

/// Opens `data`, encrypted with `kind` under `key`, its nonce at `position`.
///
/// # Errors
/// [`OpenError`] when it is too short or (for AES-GCM and CBC) does not open.
pub fn open(
    kind: CipherKind,
    position: NoncePosition,
    key: &Secret,
    data: &[u8],
) -> Result<Vec<u8>, OpenError> {
    let n = kind.nonce_len();
    let least = n + if kind == CipherKind::Aes256Gcm {
        GCM_TAG
    } else {
        0
    };
    if data.len() < least {
        return Err(OpenError::Short(data.len()));
    }
    let (nonce, body) = match position {
        NoncePosition::Prefix => (&data[..n], &data[n..]),
        NoncePosition::Suffix => (&data[data.len() - n..], &data[..data.len() - n]),
    };
    let key = key.bytes();
    match kind {
        CipherKind::Aes256Gcm => {
            let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| OpenError::Failed)?;
            let nonce = Nonce::<Aes256Gcm>::try_from(nonce).map_err(|_| OpenError::Failed)?;
            cipher.decrypt(&nonce, body).map_err(|_| OpenError::Failed)
        }
        CipherKind::Aes256Cbc => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, nonce)
            .map_err(|_| OpenError::Failed)?
            .decrypt_padded_vec::<Pkcs7>(body)
            .map_err(|_| OpenError::Failed),
        CipherKind::ChaCha20 => {
            let mut out = body.to_vec();
            chacha20::ChaCha20::new_from_slices(key, nonce)
                .map_err(|_| OpenError::Failed)?
                .apply_keystream(&mut out);
            Ok(out)
        }
        CipherKind::Salsa20 => {
            let mut out = body.to_vec();
            salsa20::Salsa20::new_from_slices(key, nonce)
                .map_err(|_| OpenError::Failed)?
                .apply_keystream(&mut out);
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cbc::cipher::BlockModeEncrypt;

    fn key(byte: u8) -> Secret {
        Secret::new(vec![byte; 32])
    }

    #[test]
    fn sealed_values_open_with_their_key_and_nonces_differ() {
        let sealer = Sealer::new(key(1));
        let a = sealer.seal(b"4111 1111 1111 1111");
        let b = sealer.seal(b"4111 1111 1111 1111");
        assert_ne!(a, b, "a fresh nonce per value");
        assert_eq!(a.len(), GCM_NONCE + 19 + GCM_TAG);
        assert_eq!(
            open_sealed(&key(1), &a).expect("opens"),
            b"4111 1111 1111 1111"
        );
        assert_eq!(open_sealed(&key(2), &a), Err(OpenError::Failed));
    }

    #[test]
    fn source_ciphers_open_in_both_layouts() {
        let plain = b"card 5500 0000 0000 0004";
        let mut salsa = plain.to_vec();
        salsa20::Salsa20::new_from_slices(key(3).bytes(), &[5; 8])
            .expect("key")
            .apply_keystream(&mut salsa);
        let prefixed = [&[5u8; 8][..], &salsa].concat();
        assert_eq!(
            open(
                CipherKind::Salsa20,
                NoncePosition::Prefix,
                &key(3),
                &prefixed
            )
            .expect("opens"),
            plain
        );
        let suffixed = [&salsa[..], &[5u8; 8]].concat();
        assert_eq!(
            open(
                CipherKind::Salsa20,
                NoncePosition::Suffix,
                &key(3),
                &suffixed
            )
            .expect("opens"),
            plain
        );
        let cbc = cbc::Encryptor::<aes::Aes256>::new_from_slices(key(4).bytes(), &[6; 16])
            .expect("key")
            .encrypt_padded_vec::<Pkcs7>(plain);
        let prefixed = [&[6u8; 16][..], &cbc].concat();
        assert_eq!(
            open(
                CipherKind::Aes256Cbc,
                NoncePosition::Prefix,
                &key(4),
                &prefixed
            )
            .expect("opens"),
            plain
        );
        assert_eq!(
            open(
                CipherKind::Aes256Cbc,
                NoncePosition::Prefix,
                &key(5),
                &prefixed
            ),
            Err(OpenError::Failed),
            "a wrong key breaks the padding"
        );
        assert_eq!(
            open(
                CipherKind::ChaCha20,
                NoncePosition::Prefix,
                &key(4),
                &[0; 5]
            ),
            Err(OpenError::Short(5))
        );
    }
}
