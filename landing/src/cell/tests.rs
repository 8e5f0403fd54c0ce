use super::convert::PG_EPOCH_MS;
use super::*;
use crate::column_type::ColumnType;
use bson::spec::BinarySubtype;
use bson::{rawdoc, Binary, DateTime, Decimal128};

fn convert(doc: &bson::RawDocumentBuf, ty: ColumnType) -> Result<Cell, CellError> {
    Cell::convert(
        doc.get("v").expect("readable"),
        ty,
        &ValueOptions::default(),
    )
}

#[test]
fn exact_conversions() {
    assert_eq!(
        convert(&rawdoc! { "v": 7 }, ColumnType::Int8),
        Ok(Cell::Int8(7))
    );
    assert_eq!(
        convert(&rawdoc! { "v": 7_i64 }, ColumnType::Int4),
        Ok(Cell::Int4(7))
    );
    assert_eq!(
        convert(&rawdoc! { "v": 2.5 }, ColumnType::Float8),
        Ok(Cell::Float8(2.5))
    );
    assert_eq!(convert(&rawdoc! {}, ColumnType::Int8), Ok(Cell::Null));
    assert_eq!(
        convert(&rawdoc! { "v": bson::RawBson::Null }, ColumnType::Bool),
        Ok(Cell::Null)
    );
    let d: Decimal128 = "1.50".parse().expect("decimal");
    assert_eq!(
        convert(&rawdoc! { "v": d }, ColumnType::Numeric),
        Ok(Cell::Numeric(Numeric::parse("1.50").expect("numeric")))
    );
    assert_eq!(
        convert(
            &rawdoc! { "v": DateTime::from_millis(PG_EPOCH_MS + 1) },
            ColumnType::Timestamptz
        ),
        Ok(Cell::Timestamptz(1000))
    );
    let uuid = Binary {
        subtype: BinarySubtype::Uuid,
        bytes: vec![7; 16],
    };
    assert_eq!(
        convert(&rawdoc! { "v": uuid }, ColumnType::Uuid),
        Ok(Cell::Uuid([7; 16]))
    );
}

#[test]
fn lossy_or_wrong_values_are_refused_with_a_reason() {
    let err = convert(&rawdoc! { "v": "x" }, ColumnType::Int4).expect_err("refused");
    assert_eq!((err.expected, err.found), (ColumnType::Int4, "string"));
    let err = convert(&rawdoc! { "v": 1_i64 << 40 }, ColumnType::Int4).expect_err("refused");
    assert!(err.reason.contains("out of range"), "{}", err.reason);
    assert!(convert(&rawdoc! { "v": (1_i64 << 53) + 1 }, ColumnType::Float8).is_err());
    let err = convert(&rawdoc! { "v": "a\0b" }, ColumnType::Text).expect_err("refused");
    assert!(err.reason.contains("NUL"), "{}", err.reason);
    let err = convert(&rawdoc! { "v": { "k": "a\0b" } }, ColumnType::Jsonb).expect_err("refused");
    assert!(err.reason.contains("\"k\""), "{}", err.reason);
    assert!(convert(&rawdoc! { "v": DateTime::MAX }, ColumnType::Timestamptz).is_err());
}

#[test]
fn arrays_legacy_uuids_object_ids_and_timestamps() {
    assert_eq!(
        convert(
            &rawdoc! { "v": [1, 2_i64, bson::RawBson::Null] },
            ColumnType::Int8Array
        ),
        Ok(Cell::Array(
            ColumnType::Int8,
            vec![Cell::Int8(1), Cell::Int8(2), Cell::Null]
        ))
    );
    let err = convert(&rawdoc! { "v": [1, "two"] }, ColumnType::Int8Array).expect_err("mixed");
    assert!(err.reason.starts_with("element 1:"), "{}", err.reason);
    assert!(convert(&rawdoc! { "v": 1 }, ColumnType::TextArray).is_err());

    let bytes: Vec<u8> = (0..16).collect();
    let legacy = rawdoc! { "v": Binary { subtype: BinarySubtype::UuidOld, bytes: bytes.clone() } };
    assert!(
        convert(&legacy, ColumnType::Uuid).is_err(),
        "refused unless asked"
    );
    let java = ValueOptions {
        legacy_uuid: Some(LegacyUuid::Java),
        ..ValueOptions::default()
    };
    assert_eq!(
        Cell::convert(legacy.get("v").expect("readable"), ColumnType::Uuid, &java),
        Ok(Cell::Uuid([
            7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8
        ]))
    );
    let csharp = ValueOptions {
        legacy_uuid: Some(LegacyUuid::Csharp),
        ..ValueOptions::default()
    };
    assert_eq!(
        Cell::convert(
            legacy.get("v").expect("readable"),
            ColumnType::Uuid,
            &csharp
        ),
        Ok(Cell::Uuid([
            3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15
        ]))
    );

    let oid = bson::oid::ObjectId::new();
    assert_eq!(
        convert(&rawdoc! { "v": oid }, ColumnType::Bytea),
        Ok(Cell::Bytea(oid.bytes().to_vec()))
    );
    let ts = bson::Timestamp {
        time: 3,
        increment: 4,
    };
    assert_eq!(
        convert(&rawdoc! { "v": ts }, ColumnType::Int8),
        Ok(Cell::Int8((3 << 32) | 4))
    );
    assert!(convert(&rawdoc! { "v": ts }, ColumnType::Timestamptz).is_err());
}

#[test]
fn excerpts_are_short_and_show_nul_bytes() {
    let long = "x".repeat(500);
    let text = excerpt(rawdoc! { "v": long }.get("v").expect("r").expect("v"));
    assert_eq!(text.chars().count(), 201);
    let text = excerpt(rawdoc! { "v": "a\0b" }.get("v").expect("r").expect("v"));
    assert_eq!(text, r#""a\0b""#);
}

#[test]
fn ids_of_any_type_become_distinct_text() {
    let id = |doc: bson::RawDocumentBuf| Cell::id_text(doc.get("_id").expect("readable"));
    assert_eq!(id(rawdoc! { "_id": "5" }), Ok(Cell::Text("5".into())));
    assert_eq!(
        id(rawdoc! { "_id": 5 }),
        Ok(Cell::Text(r#"{"$numberInt":"5"}"#.into()))
    );
    let oid = bson::oid::ObjectId::new();
    assert_eq!(id(rawdoc! { "_id": oid }), Ok(Cell::Text(oid.to_hex())));
}

/// Distinct `_id`s never share a key: each pair below collided before (an ObjectId
/// and its hex string, 5 and the string of its Extended JSON, null and "null"), and
/// plain strings keep their text.
#[test]
fn id_text_is_injective() {
    let oid = bson::oid::ObjectId::new();
    let ids = [
        bson::Bson::ObjectId(oid),
        bson::Bson::String(oid.to_hex()),
        bson::Bson::String(oid.to_hex().to_uppercase()),
        bson::Bson::Int32(5),
        bson::Bson::String(r#"{"$numberInt":"5"}"#.into()),
        bson::Bson::String(r#""{\"$numberInt\":\"5\"}""#.into()),
        bson::Bson::Null,
        bson::Bson::String("null".into()),
        bson::Bson::String("\"null\"".into()),
        bson::Bson::Boolean(true),
        bson::Bson::String("true".into()),
        bson::Bson::String("false".into()),
        bson::Bson::String("\"".into()),
        bson::Bson::String("5".into()),
        bson::Bson::String("plain".into()),
        bson::Bson::Document(bson::doc! { "a": 1, "b": 2 }),
        bson::Bson::Document(bson::doc! { "b": 2, "a": 1 }),
        bson::Bson::String(r#"{"a":{"$numberInt":"1"},"b":{"$numberInt":"2"}}"#.into()),
    ];
    let mut seen = std::collections::HashMap::new();
    for value in &ids {
        let doc =
            bson::RawDocumentBuf::try_from(&bson::doc! { "_id": value.clone() }).expect("encodes");
        let Ok(Cell::Text(key)) = Cell::id_text(doc.get("_id").expect("readable")) else {
            panic!("no text key for {value:?}");
        };
        if let Some(other) = seen.insert(key.clone(), value.clone()) {
            panic!("{value:?} and {other:?} share the key {key}");
        }
    }
    let key = |value: bson::Bson| {
        let doc = bson::RawDocumentBuf::try_from(&bson::doc! { "_id": value }).expect("encodes");
        Cell::id_text(doc.get("_id").expect("readable"))
    };
    assert_eq!(key("plain".into()), Ok(Cell::Text("plain".into())));
    assert_eq!(
        key(oid.to_hex().into()),
        Ok(Cell::Text(format!("\"{}\"", oid.to_hex())))
    );
    assert_eq!(key("null".into()), Ok(Cell::Text("\"null\"".into())));
    // Text cannot hold a NUL byte: such a key is escaped too, so it can be named.
    assert_eq!(key("a\0b".into()), Ok(Cell::Text(r#""a\u0000b""#.into())));
}

/// A typed key never gives two `_id`s MongoDB tells apart one cell: each pair below
/// shares a cell as values (so one of the two would be skipped as "landed already");
/// as keys, the second is refused with the reason, or their cells differ.
#[test]
fn typed_keys_keep_distinct_ids_distinct() {
    let key = |value: bson::Bson, ty: ColumnType, options: &ValueOptions| {
        let doc = bson::RawDocumentBuf::try_from(&bson::doc! { "_id": value }).expect("encodes");
        Cell::key(doc.get("_id").expect("readable"), ty, options)
    };
    let plain = ValueOptions::default();
    let oid = bson::oid::ObjectId::new();
    let ts = bson::Timestamp {
        time: 1,
        increment: 2,
    };
    let binary = |subtype, bytes: &[u8]| {
        bson::Bson::Binary(bson::Binary {
            subtype,
            bytes: bytes.to_vec(),
        })
    };
    let refused = |result: Result<Cell, CellError>| {
        let error = result.expect_err("refused");
        assert!(error.reason.contains("map _id as text"), "{}", error.reason);
    };

    assert_eq!(
        key(bson::Bson::Int64((1 << 32) | 2), ColumnType::Int8, &plain),
        Ok(Cell::Int8((1 << 32) | 2))
    );
    refused(key(bson::Bson::Timestamp(ts), ColumnType::Int8, &plain));

    assert_eq!(
        key(bson::Bson::ObjectId(oid), ColumnType::Bytea, &plain),
        Ok(Cell::Bytea(oid.bytes().to_vec()))
    );
    refused(key(
        binary(BinarySubtype::Generic, &oid.bytes()),
        ColumnType::Bytea,
        &plain,
    ));
    refused(key(
        binary(BinarySubtype::Md5, &[7; 16]),
        ColumnType::Bytea,
        &plain,
    ));
    assert_eq!(
        key(
            binary(BinarySubtype::Generic, &[7; 16]),
            ColumnType::Bytea,
            &plain
        ),
        Ok(Cell::Bytea(vec![7; 16]))
    );

    let uuid = [9_u8; 16];
    assert_eq!(
        key(binary(BinarySubtype::Uuid, &uuid), ColumnType::Uuid, &plain),
        Ok(Cell::Uuid(uuid))
    );
    let legacy = ValueOptions {
        legacy_uuid: Some(LegacyUuid::Python),
        ..ValueOptions::default()
    };
    assert_eq!(
        key(
            binary(BinarySubtype::UuidOld, &uuid),
            ColumnType::Uuid,
            &legacy
        ),
        Ok(Cell::Uuid(uuid))
    );
    refused(key(
        binary(BinarySubtype::Uuid, &uuid),
        ColumnType::Uuid,
        &legacy,
    ));

    // 0.1 as a double and as a Decimal128 are two _ids in MongoDB.
    let decimal: bson::Decimal128 = "0.1".parse().expect("decimal");
    let tenth_double = key(bson::Bson::Double(0.1), ColumnType::Numeric, &plain).expect("key");
    let tenth_decimal = key(bson::Bson::Decimal128(decimal), ColumnType::Numeric, &plain);
    assert_ne!(Ok(tenth_double.clone()), tenth_decimal);
    assert_eq!(
        tenth_double,
        Cell::Numeric(
            Numeric::parse("0.1000000000000000055511151231257827021181583404541015625")
                .expect("numeric")
        )
    );
    // 5.0 and 5 are one _id in MongoDB, and one key.
    assert_eq!(
        key(bson::Bson::Double(5.0), ColumnType::Numeric, &plain),
        key(bson::Bson::Int32(5), ColumnType::Numeric, &plain)
    );
}
