//! Hard documents: what real collections hold and demos do not.
//!
//! Each document has a string `_id` naming what it tests, so a test can say which must
//! land and which must be rejected, and why.

use bson::spec::BinarySubtype;
use bson::{doc, Binary, Bson, DateTime, Decimal128, Document};

/// Milliseconds from 1970 of PostgreSQL's earliest timestamptz (4713-11-24 BC).
pub const PG_MIN_DATE_MS: i64 = -210_866_803_200_000;

fn decimal(text: &str) -> Bson {
    Bson::Decimal128(text.parse::<Decimal128>().expect("a Decimal128 literal"))
}

/// A document nested `levels` subdocuments deep.
pub fn nested(levels: usize) -> Document {
    let mut inner = doc! { "leaf": "bottom" };
    for level in (0..levels).rev() {
        inner = doc! { format!("l{level}"): inner };
    }
    inner
}

/// The hard documents, by `_id`. `five-*` hold field `v` with five different types;
/// `date-*` hold `d` at and beyond PostgreSQL's range; `dec-*` hold Decimal128
/// extremes in `dec`.
pub fn hard_documents() -> Vec<Document> {
    let long_key = "k".repeat(200);
    let mut docs = vec![
        doc! { "_id": "unicode", "名前": "日本語のテキスト 😀", "ключ": "значение", "emoji🔑": "ünïcödé", "rtl": "مرحبا" },
        doc! { "_id": "empty", "": "empty key", "s": "", "o": {}, "a": [] },
        doc! { "_id": "keys", "a.b": 1, "$dollar": 2, "with space": 3, "quote\"d": 4, "single'q": 5, "back\\slash": 6, "x": { "c.d": 7, "$in": 8 } },
        doc! { "_id": "long-key", long_key: "value of a 200-character key" },
        doc! { "_id": "deep", "n": nested(100) },
        doc! { "_id": "five-long", "v": 5_i64 },
        doc! { "_id": "five-string", "v": "five" },
        doc! { "_id": "five-date", "v": DateTime::from_millis(1_700_000_000_000) },
        doc! { "_id": "five-object", "v": { "five": 5 } },
        doc! { "_id": "five-array", "v": [5, "five"] },
        doc! { "_id": "dec-max", "dec": decimal("9.999999999999999999999999999999999E+6144") },
        doc! { "_id": "dec-min", "dec": decimal("-9.999999999999999999999999999999999E+6144") },
        doc! { "_id": "dec-tiny", "dec": decimal("1E-6176") },
        doc! { "_id": "dec-nan", "dec": decimal("NaN") },
        doc! { "_id": "dec-inf", "dec": decimal("-Infinity") },
        doc! { "_id": "dec-scale", "dec": decimal("1.500") },
        doc! { "_id": "date-min", "d": DateTime::from_millis(PG_MIN_DATE_MS) },
        doc! { "_id": "date-too-early", "d": DateTime::from_millis(PG_MIN_DATE_MS - 1) },
        doc! { "_id": "date-too-late", "d": DateTime::MAX },
        doc! { "_id": "date-1900", "d": DateTime::from_millis(-2_208_988_800_000) },
        doc! { "_id": "nul", "text": "before\0after" },
        doc! { "_id": "types", "uuid": Binary { subtype: BinarySubtype::Uuid, bytes: (0..16).collect() },
        "bin": Binary { subtype: BinarySubtype::Generic, bytes: vec![0, 255, 1] },
        "ts": bson::Timestamp { time: 1, increment: 2 },
        "re": bson::Regex { pattern: "^a".try_into().expect("cstr"), options: "i".try_into().expect("cstr") },
        "code": Bson::JavaScriptCode("f()".into()), "min": Bson::MinKey, "max": Bson::MaxKey,
        "nan": f64::NAN, "inf": f64::NEG_INFINITY, "negzero": -0.0, "null": Bson::Null },
    ];
    // A document just under MongoDB's 16 MiB limit: larger than NATS' max_payload, so
    // it travels through the object store.
    let big = "x".repeat(16 * 1024 * 1024 - 1024);
    docs.push(doc! { "_id": "big", "blob": big });
    docs
}

/// The `_id`s of hard documents the default table must reject: a NUL byte cannot be
/// stored in jsonb.
pub const REJECTED_BY_DEFAULT: &[&str] = &["nul"];
