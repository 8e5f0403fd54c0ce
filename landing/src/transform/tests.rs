use bson::{rawdoc, RawBsonRef};

use super::cipher::{self, CipherKind, Encoding, NoncePosition, SourceCipher};
use super::keys::{Keyring, Secret};
use super::*;

fn keyring() -> Keyring {
    Keyring::of([
        ("pii".to_string(), Secret::new(vec![1; 32])),
        ("legacy".to_string(), Secret::new(vec![2; 32])),
    ])
}

fn apply(transforms: &[Transform], ty: ColumnType, value: RawBsonRef<'_>) -> Result<Cell, String> {
    Chain::compile(transforms, ty, &keyring())
        .expect("compiles")
        .apply(Some(value))
}

#[test]
fn hash_is_hmac_sha256_in_hex_or_bytes() {
    let hash = [Transform::Hash {
        key: "pii".to_string(),
    }];
    // Python's hmac.new(bytes([1] * 32), b"ada@example.com", hashlib.sha256).hexdigest()
    let digest = "cd0779a6ee2092a88db69b0d568dd6e9bb308884e58645aadbc55e5419d1e275";
    assert_eq!(
        apply(
            &hash,
            ColumnType::Text,
            RawBsonRef::String("ada@example.com")
        ),
        Ok(Cell::Text(digest.to_string()))
    );
    let Ok(Cell::Bytea(raw)) = apply(
        &hash,
        ColumnType::Bytea,
        RawBsonRef::String("ada@example.com"),
    ) else {
        panic!("raw digest")
    };
    assert_eq!(hex::encode(raw), digest);
}

#[test]
fn text_steps_chain_in_order() {
    let steps = [
        Transform::Trim,
        Transform::Lowercase,
        Transform::Replace {
            pattern: "^s3://old-bucket/".to_string(),
            with: "s3://new-bucket/".to_string(),
            required: false,
        },
    ];
    assert_eq!(
        apply(
            &steps,
            ColumnType::Text,
            RawBsonRef::String("  S3://OLD-BUCKET/A.png ")
        ),
        Ok(Cell::Text("s3://new-bucket/a.png".to_string()))
    );
    let mask = [Transform::Mask { keep: 4, with: '*' }];
    assert_eq!(
        apply(
            &mask,
            ColumnType::Text,
            RawBsonRef::String("4111111111111111")
        ),
        Ok(Cell::Text("************1111".to_string()))
    );
    assert_eq!(
        apply(&mask, ColumnType::Text, RawBsonRef::String("abc")),
        Ok(Cell::Text("abc".to_string()))
    );
    assert_eq!(
        apply(
            &[Transform::Redact],
            ColumnType::Int4,
            RawBsonRef::String("x")
        ),
        Ok(Cell::Null)
    );
}

#[test]
fn a_required_pattern_that_does_not_match_is_refused_without_the_value() {
    let steps = [Transform::Replace {
        pattern: "^https://cdn\\.old/".to_string(),
        with: "https://cdn.new/".to_string(),
        required: true,
    }];
    let refused =
        apply(&steps, ColumnType::Text, RawBsonRef::String("secret-value")).expect_err("refused");
    assert!(!refused.contains("secret-value"), "{refused}");
    assert!(refused.contains("does not match"), "{refused}");
}

#[test]
fn encrypt_and_reencrypt_give_aes_gcm_that_opens_with_the_key() {
    let encrypt = [Transform::Encrypt {
        key: "pii".to_string(),
    }];
    let Ok(Cell::Bytea(sealed)) = apply(&encrypt, ColumnType::Bytea, RawBsonRef::String("4111"))
    else {
        panic!("sealed")
    };
    assert_eq!(
        cipher::open_sealed(&Secret::new(vec![1; 32]), &sealed).expect("opens"),
        b"4111"
    );

    let mut salsa = b"old secret".to_vec();
    {
        use salsa20::cipher::{KeyIvInit, StreamCipher};
        salsa20::Salsa20::new_from_slices(&[2; 32], &[9; 8])
            .expect("key")
            .apply_keystream(&mut salsa);
    }
    let stored = hex::encode([&[9u8; 8][..], &salsa].concat());
    let reencrypt = |key: &str| {
        [Transform::Reencrypt {
            from: SourceCipher {
                cipher: CipherKind::Salsa20,
                key: key.to_string(),
                nonce: NoncePosition::Prefix,
                encoding: Encoding::Hex,
            },
            key: "pii".to_string(),
        }]
    };
    let Ok(Cell::Bytea(sealed)) = apply(
        &reencrypt("legacy"),
        ColumnType::Bytea,
        RawBsonRef::String(&stored),
    ) else {
        panic!("reencrypted")
    };
    assert_eq!(
        cipher::open_sealed(&Secret::new(vec![1; 32]), &sealed).expect("opens"),
        b"old secret"
    );
    let refused = apply(
        &reencrypt("legacy"),
        ColumnType::Bytea,
        RawBsonRef::String("zz"),
    )
    .expect_err("not hex");
    assert_eq!(refused, "reencrypt: the value is not Hex-encoded");
}

#[test]
fn steps_that_do_not_fit_the_column_are_found_before_anything_lands() {
    assert_eq!(
        check(
            &[Transform::Encrypt {
                key: "pii".to_string()
            }],
            ColumnType::Text
        )
        .expect_err("bytes into text")
        .to_string(),
        "encrypt gives bytes, so the column must be type = \"bytea\""
    );
    assert!(check(&[Transform::Lowercase], ColumnType::Int4).is_err());
    assert!(check(
        &[Transform::Replace {
            pattern: "(".to_string(),
            with: String::new(),
            required: false
        }],
        ColumnType::Text
    )
    .is_err());
    assert!(matches!(
        Chain::compile(
            &[Transform::Hash {
                key: "nope".to_string()
            }],
            ColumnType::Text,
            &keyring()
        ),
        Err(ChainError::Key(_))
    ));
}

#[test]
fn other_types_and_nulls() {
    let hash = [Transform::Hash {
        key: "pii".to_string(),
    }];
    assert_eq!(
        apply(&hash, ColumnType::Text, RawBsonRef::Null),
        Ok(Cell::Null)
    );
    assert!(apply(&hash, ColumnType::Text, RawBsonRef::Double(1.5))
        .expect_err("double")
        .contains("not double"));
    let doc = rawdoc! { "n": 42_i64 };
    let n = doc.get("n").expect("n").expect("n");
    assert_eq!(
        apply(&hash, ColumnType::Text, n),
        apply(&hash, ColumnType::Text, RawBsonRef::String("42"))
    );
}
