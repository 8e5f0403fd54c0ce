//! Raw BSON straight to canonical Extended JSON text, for jsonb columns.
//!
//! The obvious path (raw bytes → `Bson` → `serde_json::Value` → text) allocates at every
//! step, for every value of every document: on a jsonb-heavy table it was most of a
//! consumer's CPU. This writes the text in one pass over the raw bytes. The output is
//! exactly what `Bson::into_canonical_extjson` gives (a test compares the two on every
//! type); the rare types (regex, code, symbol, timestamp, DBPointer, Min/MaxKey,
//! undefined) still go through `bson` itself, so their forms cannot drift.
//!
//! PostgreSQL's jsonb cannot store `\u0000`: a NUL byte in a key or string is an error
//! naming its path, never silently changed.

use std::fmt::Write as _;

use base64::Engine as _;
use bson::{Bson, RawArray, RawBsonRef, RawDocument};

/// Which Extended JSON: canonical keeps every type (`{"$numberInt":"5"}`), relaxed
/// writes numbers as JSON numbers and recent dates as ISO strings, easier to query but
/// no longer telling an int from a long.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JsonMode {
    /// Canonical Extended JSON: every BSON type kept (`{"$numberInt": "5"}`).
    #[default]
    Canonical,
    /// Relaxed Extended JSON: numbers as JSON numbers, dates as ISO strings.
    Relaxed,
}

/// Why a value cannot become jsonb text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// Dotted path to the value at fault, empty for the value itself.
    pub path: Vec<String>,
    /// Why it cannot.
    pub reason: String,
}

impl JsonError {
    fn at(reason: impl Into<String>) -> Self {
        JsonError {
            path: Vec::new(),
            reason: reason.into(),
        }
    }

    fn within(mut self, key: &str) -> Self {
        self.path.insert(0, key.to_string());
        self
    }
}

/// Appends the Extended JSON text of `value` to `out`.
pub fn write_value(
    value: RawBsonRef<'_>,
    mode: JsonMode,
    out: &mut String,
) -> Result<(), JsonError> {
    if mode == JsonMode::Relaxed {
        if let Some(()) = write_relaxed(value, out) {
            return Ok(());
        }
    }
    match value {
        RawBsonRef::Document(doc) => write_document(doc, mode, out),
        RawBsonRef::Array(array) => write_array(array, mode, out),
        RawBsonRef::String(s) => write_string(s, out),
        RawBsonRef::Int32(v) => {
            let _ = write!(out, r#"{{"$numberInt":"{v}"}}"#);
            Ok(())
        }
        RawBsonRef::Int64(v) => {
            let _ = write!(out, r#"{{"$numberLong":"{v}"}}"#);
            Ok(())
        }
        RawBsonRef::Double(v) => {
            write_double(v, out);
            Ok(())
        }
        RawBsonRef::Boolean(v) => {
            out.push_str(if v { "true" } else { "false" });
            Ok(())
        }
        RawBsonRef::Null => {
            out.push_str("null");
            Ok(())
        }
        RawBsonRef::ObjectId(oid) => {
            let _ = write!(out, r#"{{"$oid":"{}"}}"#, object_id_hex(&oid));
            Ok(())
        }
        RawBsonRef::DateTime(dt) => {
            let _ = write!(
                out,
                r#"{{"$date":{{"$numberLong":"{}"}}}}"#,
                dt.timestamp_millis()
            );
            Ok(())
        }
        RawBsonRef::Decimal128(d) => {
            let _ = write!(out, r#"{{"$numberDecimal":"{d}"}}"#);
            Ok(())
        }
        RawBsonRef::Binary(bin) => {
            let _ = write!(
                out,
                r#"{{"$binary":{{"base64":"{}","subType":"{:02x}"}}}}"#,
                base64::engine::general_purpose::STANDARD.encode(bin.bytes),
                u8::from(bin.subtype)
            );
            Ok(())
        }
        other => write_through_bson(other, mode, out),
    }
}

/// The values relaxed Extended JSON writes differently; `None` for the others.
fn write_relaxed(value: RawBsonRef<'_>, out: &mut String) -> Option<()> {
    match value {
        RawBsonRef::Int32(v) => {
            let _ = write!(out, "{v}");
        }
        RawBsonRef::Int64(v) => {
            let _ = write!(out, "{v}");
        }
        RawBsonRef::Double(v) if v.is_finite() => {
            out.push_str(&serde_json::to_string(&v).ok()?);
        }
        // ISO-8601 for dates from 1970 to 9999, as the specification says.
        RawBsonRef::DateTime(dt) if (0..253_402_300_800_000).contains(&dt.timestamp_millis()) => {
            let _ = write!(out, r#"{{"$date":"{}"}}"#, dt.try_to_rfc3339_string().ok()?);
        }
        _ => return None,
    }
    Some(())
}

/// Writes a document as Extended JSON in `mode` to `out`.
pub fn write_document(
    doc: &RawDocument,
    mode: JsonMode,
    out: &mut String,
) -> Result<(), JsonError> {
    out.push('{');
    for (i, element) in doc.iter().enumerate() {
        let (key, value) = element.map_err(|e| JsonError::at(format!("unreadable BSON: {e}")))?;
        let key = key.as_str();
        if i > 0 {
            out.push(',');
        }
        write_string(key, out).map_err(|e| e.within(key))?;
        out.push(':');
        write_value(value, mode, out).map_err(|e| e.within(key))?;
    }
    out.push('}');
    Ok(())
}

fn write_array(array: &RawArray, mode: JsonMode, out: &mut String) -> Result<(), JsonError> {
    out.push('[');
    for (i, value) in array.into_iter().enumerate() {
        let value = value.map_err(|e| JsonError::at(format!("unreadable BSON: {e}")))?;
        if i > 0 {
            out.push(',');
        }
        write_value(value, mode, out).map_err(|e| e.within(&i.to_string()))?;
    }
    out.push(']');
    Ok(())
}

/// An ObjectId's 24 lowercase hex digits, as `ObjectId::to_hex` writes them. Its
/// char-by-char iterator was a tenth of a consumer's time on flat documents, whose
/// `_id` lands as text in every row.
pub fn object_id_hex(id: &bson::oid::ObjectId) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(24);
    for byte in id.bytes() {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

/// A JSON string literal, escaped as serde_json escapes it.
pub fn write_string(s: &str, out: &mut String) -> Result<(), JsonError> {
    if s.contains('\0') {
        return Err(JsonError::at("holds a NUL byte, which jsonb cannot store"));
    }
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
    Ok(())
}

/// Doubles in canonical Extended JSON. The specification knows only `"NaN"` (a NaN's
/// sign bit has no spelling), and a subnormal is a `$numberDouble` too, in exponent
/// notation (`"5e-324"`): written as a plain JSON number, it read back as a number of
/// unknown type.
fn write_double(v: f64, out: &mut String) {
    if v.is_nan() {
        out.push_str(r#"{"$numberDouble":"NaN"}"#);
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 {
            r#"{"$numberDouble":"Infinity"}"#
        } else {
            r#"{"$numberDouble":"-Infinity"}"#
        });
    } else if v == 0.0 {
        out.push_str(if v.is_sign_negative() {
            r#"{"$numberDouble":"-0.0"}"#
        } else {
            r#"{"$numberDouble":"0.0"}"#
        });
    } else if v.is_normal() {
        let suffix = if v.fract() == 0.0 { ".0" } else { "" };
        let _ = write!(out, r#"{{"$numberDouble":"{v}{suffix}"}}"#);
    } else {
        let _ = write!(out, r#"{{"$numberDouble":"{v:e}"}}"#);
    }
}

/// The rare types, through `bson`'s own conversion.
fn write_through_bson(
    value: RawBsonRef<'_>,
    mode: JsonMode,
    out: &mut String,
) -> Result<(), JsonError> {
    let bson = Bson::try_from(value).map_err(|e| JsonError::at(format!("unreadable BSON: {e}")))?;
    if let Bson::JavaScriptCode(code) | Bson::Symbol(code) = &bson {
        if code.contains('\0') {
            return Err(JsonError::at("holds a NUL byte, which jsonb cannot store"));
        }
    }
    if let Bson::JavaScriptCodeWithScope(code) = &bson {
        if code.code.contains('\0') {
            return Err(JsonError::at("holds a NUL byte, which jsonb cannot store"));
        }
        let scope = bson::RawDocumentBuf::try_from(&code.scope)
            .map_err(|e| JsonError::at(format!("unreadable BSON: {e}")))?;
        // Check the scope's strings the same way as any document's.
        write_document(&scope, mode, &mut String::new()).map_err(|e| e.within("$scope"))?;
    }
    let json = match mode {
        JsonMode::Canonical => bson.into_canonical_extjson(),
        JsonMode::Relaxed => bson.into_relaxed_extjson(),
    };
    serde_json::to_string(&json)
        .map(|text| out.push_str(&text))
        .map_err(|e| JsonError::at(format!("cannot render as JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::spec::BinarySubtype;
    use bson::{doc, Binary, DateTime, Decimal128, JavaScriptCodeWithScope, Regex, Timestamp};

    fn ours(doc: &bson::Document) -> serde_json::Value {
        written(doc, JsonMode::Canonical)
    }

    fn written(doc: &bson::Document, mode: JsonMode) -> serde_json::Value {
        let raw = bson::RawDocumentBuf::try_from(doc).expect("raw");
        let mut text = String::new();
        write_document(&raw, mode, &mut text).expect("writes");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    fn theirs(doc: &bson::Document) -> serde_json::Value {
        Bson::Document(doc.clone()).into_canonical_extjson()
    }

    #[test]
    fn matches_bson_for_every_type() {
        let doc = doc! {
            "int": 5, "long": 5_i64, "neg": -7,
            "doubles": [1.5, 2.0, -0.0, 0.0, 1e300, 1e-300, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.1],
            "string": "tab\t quote\" back\\ nl\n bell\u{7} é 日本 😀",
            "bool": true, "null": null,
            "oid": bson::oid::ObjectId::new(),
            "date": DateTime::from_millis(-62_135_596_800_000), "now": DateTime::now(),
            "decimal": "1.50".parse::<Decimal128>().expect("decimal"),
            "decimal_nan": "NaN".parse::<Decimal128>().expect("decimal"),
            "binary": Binary { subtype: BinarySubtype::Generic, bytes: vec![0, 1, 2, 255] },
            "uuid": Binary { subtype: BinarySubtype::Uuid, bytes: vec![7; 16] },
            "user": Binary { subtype: BinarySubtype::UserDefined(0x80), bytes: vec![] },
            "regex": Regex { pattern: "^a.*".try_into().expect("cstr"), options: "xi".try_into().expect("cstr") },
            "code": bson::Bson::JavaScriptCode("f()".into()),
            "scope": JavaScriptCodeWithScope { code: "g()".into(), scope: doc! { "x": 1 } },
            "symbol": bson::Bson::Symbol("s".into()),
            "ts": Timestamp { time: 1, increment: 2 },
            "min": bson::Bson::MinKey, "max": bson::Bson::MaxKey, "undef": bson::Bson::Undefined,
            "nested": { "a": [ { "b": [[]] }, {} ], "": "empty key", "dotted.key": 1, "$dollar": 2 },
        };
        assert_eq!(ours(&doc), theirs(&doc));
        assert_eq!(
            written(&doc, JsonMode::Relaxed),
            Bson::Document(doc.clone()).into_relaxed_extjson()
        );
    }

    /// Where `bson` is off the specification: a subnormal double written as a plain
    /// JSON number (read back, its type is lost), a NaN with its sign bit written
    /// `"-NaN"` (no such spelling exists). Ours reads back as the same double.
    #[test]
    fn subnormal_and_negative_nan_doubles_stay_doubles() {
        let negative_nan = f64::from_bits(f64::NAN.to_bits() | (1 << 63));
        assert!(negative_nan.is_nan() && negative_nan.is_sign_negative());
        let doc = doc! { "a": 5e-324, "b": 1e-320, "c": -2.2e-310, "d": negative_nan };
        let json = ours(&doc);
        assert_eq!(json["a"], serde_json::json!({ "$numberDouble": "5e-324" }));
        assert_eq!(json["b"], serde_json::json!({ "$numberDouble": "1e-320" }));
        assert_eq!(json["d"], serde_json::json!({ "$numberDouble": "NaN" }));
        let back = bson::Bson::try_from(json).expect("valid canonical Extended JSON");
        let back = back.as_document().expect("a document");
        for key in ["a", "b", "c"] {
            assert_eq!(
                back.get_f64(key).expect("a double").to_bits(),
                doc.get_f64(key).expect("a double").to_bits(),
                "{key}"
            );
        }
        assert!(back.get_f64("d").expect("a double").is_nan());
    }

    #[test]
    fn nul_bytes_are_refused_with_their_path() {
        let raw =
            bson::RawDocumentBuf::try_from(&doc! { "a": { "b": ["ok", "x\0y"] } }).expect("raw");
        let err =
            write_document(&raw, JsonMode::Canonical, &mut String::new()).expect_err("refused");
        assert_eq!(err.path, ["a", "b", "1"]);
        assert!(err.reason.contains("NUL"));
    }

    #[test]
    fn object_id_hex_matches_the_drivers_spelling() {
        for _ in 0..1000 {
            let id = bson::oid::ObjectId::new();
            assert_eq!(object_id_hex(&id), id.to_hex());
        }
        let every_digit = bson::oid::ObjectId::from_bytes([
            0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98,
        ]);
        assert_eq!(object_id_hex(&every_digit), "0123456789abcdeffedcba98");
    }
}
