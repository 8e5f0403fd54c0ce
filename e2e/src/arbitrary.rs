//! Generated BSON documents of every type, nested and mixed, for property tests.

use bson::spec::BinarySubtype;
use bson::{
    Binary, Bson, DateTime, Decimal128, Document, JavaScriptCodeWithScope, Regex, Timestamp,
};
use proptest::prelude::*;

/// Strings, now and then with a NUL byte (which PostgreSQL cannot store).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => any::<String>(),
        1 => "[a-z]{0,3}\u{0}[a-z]{0,3}",
        2 => "[ -~]{0,12}",
    ]
}

/// Keys: BSON keys cannot hold NUL; dots, dollars, spaces and unicode are fine.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z]{1,8}",
        1 => "[^\u{0}]{0,10}",
        1 => Just("a.b".to_string()),
        1 => Just("$d".to_string()),
    ]
}

fn decimal() -> impl Strategy<Value = Bson> {
    prop_oneof![
        (any::<i64>(), -6100_i32..6100).prop_map(|(m, e)| format!("{m}E{e}")),
        Just("NaN".to_string()),
        Just("-Infinity".to_string()),
        Just("9.999999999999999999999999999999999E+6144".to_string()),
        Just("1E-6176".to_string()),
    ]
    .prop_filter_map("a Decimal128", |t| {
        t.parse::<Decimal128>().ok().map(Bson::Decimal128)
    })
}

fn scalar() -> impl Strategy<Value = Bson> {
    prop_oneof![
        any::<i32>().prop_map(Bson::Int32),
        any::<i64>().prop_map(Bson::Int64),
        any::<f64>().prop_map(Bson::Double),
        prop_oneof![
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(-0.0),
            Just(5e-324)
        ]
        .prop_map(Bson::Double),
        text().prop_map(Bson::String),
        any::<bool>().prop_map(Bson::Boolean),
        Just(Bson::Null),
        any::<i64>().prop_map(|ms| Bson::DateTime(DateTime::from_millis(ms))),
        any::<[u8; 12]>().prop_map(|b| Bson::ObjectId(bson::oid::ObjectId::from_bytes(b))),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(|bytes| Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes
        })),
        any::<[u8; 16]>().prop_map(|b| Bson::Binary(Binary {
            subtype: BinarySubtype::Uuid,
            bytes: b.to_vec()
        })),
        decimal(),
        ("[a-z^$.*]{0,6}", "i?m?s?x?").prop_filter_map("a regex", |(p, o)| {
            Some(Bson::RegularExpression(Regex {
                pattern: p.try_into().ok()?,
                options: o.try_into().ok()?,
            }))
        }),
        (any::<u32>(), any::<u32>())
            .prop_map(|(time, increment)| Bson::Timestamp(Timestamp { time, increment })),
        "[a-z(); ]{0,10}".prop_map(Bson::JavaScriptCode),
        ("[a-z()]{0,6}", any::<i32>()).prop_map(|(code, x)| Bson::JavaScriptCodeWithScope(
            JavaScriptCodeWithScope {
                code,
                scope: bson::doc! { "x": x }
            }
        )),
        "[a-z]{0,6}".prop_map(Bson::Symbol),
        Just(Bson::MinKey),
        Just(Bson::MaxKey),
    ]
}

/// Any value: scalars, and documents and arrays of them up to four levels deep.
pub fn value() -> impl Strategy<Value = Bson> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Bson::Array),
            proptest::collection::vec((key(), inner), 0..6)
                .prop_map(|fields| { Bson::Document(fields.into_iter().collect::<Document>()) }),
        ]
    })
}

/// A document of up to eight fields of any type (its `_id` is the caller's).
pub fn document() -> impl Strategy<Value = Document> {
    proptest::collection::vec(
        (key().prop_filter("not _id", |k| k != "_id"), value()),
        0..8,
    )
    .prop_map(|fields| fields.into_iter().collect())
}
