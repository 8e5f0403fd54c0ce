//! Documents to rows: paths, `_extra`, missing and null, field order, wide tables.
use super::*;

#[test]
fn default_plan_keeps_the_whole_document() {
    let plan = TablePlan::default_for("users");
    let doc = rawdoc! { "_id": 1, "a": { "b": [1, "x"] } };
    let row = plan.row(&doc).expect("maps").cells;
    assert_eq!(row[0], Cell::Text(r#"{"$numberInt":"1"}"#.into()));
    let Cell::Jsonb(json) = &row[1] else {
        panic!("jsonb")
    };
    let back: serde_json::Value = serde_json::from_str(json).expect("json");
    assert_eq!(back["a"]["b"][1], "x");
}

#[test]
fn paths_reach_into_subdocuments_and_name_the_bad_field() {
    let file: MappingFile = toml::from_str(
        r#"
        [collections.users]
        table = "people"
        columns = [
          { name = "id", path = "_id", type = "text" },
          { name = "city", path = "address.city", type = "text" },
          { name = "age", path = "age", type = "int4" },
        ]
        "#,
    )
    .expect("parses");
    let plan = file.plan("users");
    assert_eq!(plan.table, "people");
    assert_eq!(plan.primary_key, Some(0));
    let row = plan
        .row(&rawdoc! { "_id": "u1", "address": { "city": "Porto" } })
        .expect("maps");
    assert_eq!(
        row.cells,
        vec![
            Cell::Text("u1".into()),
            Cell::Text("Porto".into()),
            Cell::Null,
            Cell::Null,
        ]
    );
    let err = plan
        .row(&rawdoc! { "_id": "u2", "age": "old" })
        .expect_err("rejected");
    assert_eq!(err.field, "age");
    assert_eq!(err.excerpt.as_deref(), Some(r#""old""#));
    assert_eq!(
        err.to_string(),
        r#"field "age": expected int4, found string: a string value cannot be stored as int4"#
    );
}

#[test]
fn unread_fields_land_in_extra_by_path() {
    let plan = plan_of(
        r#"
        [collections.c]
        columns = [
          { path = "_id", type = "int4" },
          { path = "address.city", type = "text" },
        ]
        "#,
    );
    let names: Vec<&str> = plan.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["_id", "address_city", "_extra"]);
    let row = plan
        .row(&rawdoc! { "_id": 1, "address": { "city": "Porto", "zip": "4000" }, "new": [1] })
        .expect("maps");
    assert_eq!(row.cells[1], Cell::Text("Porto".into()));
    assert_eq!(
        json(&row.cells[2]),
        serde_json::json!({ "address": { "zip": "4000" }, "new": [{ "$numberInt": "1" }] })
    );
    // A path through a scalar: the scalar is kept whole.
    let row = plan
        .row(&rawdoc! { "_id": 2, "address": "unknown" })
        .expect("maps");
    assert_eq!(row.cells[1], Cell::Null);
    assert_eq!(
        json(&row.cells[2]),
        serde_json::json!({ "address": "unknown" })
    );
    // Everything read: no extra.
    let row = plan
        .row(&rawdoc! { "_id": 3, "address": { "city": "x" } })
        .expect("maps");
    assert_eq!(row.cells[2], Cell::Null);
    // A NUL byte in an unread field is refused with its path, not dropped.
    let err = plan
        .row(&rawdoc! { "_id": 4, "notes": { "a": "x\0" } })
        .expect_err("refused");
    assert_eq!(err.field, "notes.a");
}

#[test]
fn missing_and_null_can_be_told_apart() {
    let plan = plan_of(
        r#"
        [collections.c]
        missing = "distinct"
        json = "relaxed"
        columns = [
          { path = "_id", type = "int4" },
          { path = "a", type = "int4" },
          { path = "b", type = "jsonb" },
        ]
        "#,
    );
    let row = plan
        .row(&rawdoc! { "_id": 1, "a": bson::RawBson::Null, "b": { "n": 5 } })
        .expect("maps");
    assert_eq!(row.cells[1], Cell::Null);
    assert_eq!(
        row.cells[2],
        Cell::Jsonb(r#"{"n":5}"#.into()),
        "relaxed JSON"
    );
    assert_eq!(row.cells[4], Cell::Array(ColumnType::Text, vec![]));
    let row = plan.row(&rawdoc! { "_id": 2 }).expect("maps");
    assert_eq!(
        row.cells[4],
        Cell::Array(
            ColumnType::Text,
            vec![Cell::Text("a".into()), Cell::Text("b".into())]
        )
    );
}

#[test]
fn fields_in_another_order_than_the_first_documents_map_alike() {
    let plan = nested_plan();
    let first = plan
        .row(&rawdoc! { "_id": 1_i64, "age": 30, "address": { "city": "Porto" }, "tags": ["a"] })
        .expect("maps");
    // Reordered, with a field the first lacked, and `age` twice (the first wins).
    let reordered = plan
        .row(&rawdoc! { "tags": ["a"], "age": 30, "note": "x", "address": { "city": "Porto" }, "age": 31, "_id": 1_i64 })
        .expect("maps");
    assert_eq!(reordered.cells[..4], first.cells[..4]);
    assert_eq!(reordered.children, first.children);
    assert_eq!(first.cells[3], Cell::Int4(30));
    assert_eq!(
        json(&reordered.cells[4]),
        serde_json::json!({ "note": "x" })
    );
    assert_eq!(first.cells[4], Cell::Null);
    // Fewer fields than the first, at other positions.
    let fewer = plan
        .row(&rawdoc! { "address": { "city": "Lagos" }, "_id": 2_i64 })
        .expect("maps");
    assert_eq!(fewer.cells[1], Cell::Text("Lagos".into()));
    assert_eq!(fewer.cells[3], Cell::Null);
    assert!(fewer.children[0].is_empty());
}

#[test]
fn a_table_wider_than_the_stack_holds_maps_alike() {
    // More columns than `row` keeps on the stack: the values are held on the heap.
    let columns: Vec<String> = (0..40)
        .map(|i| format!("  {{ path = \"f{i}\", type = \"int4\" }},"))
        .collect();
    let plan = plan_of(&format!(
        "[collections.c]\ncolumns = [\n  {{ path = \"_id\", type = \"int4\" }},\n{}\n]",
        columns.join("\n")
    ));
    let mut doc = rawdoc! { "_id": 1 };
    for i in (0..40).rev() {
        doc.append(bson::cstr!("x"), 0); // a field no column reads
        let key = format!("f{i}");
        doc.append(
            <&bson::raw::CStr>::try_from(key.as_str()).expect("a key"),
            i * 10,
        );
    }
    let row = plan.row(&doc).expect("maps");
    assert_eq!(row.cells[0], Cell::Int4(1));
    for i in 0..40 {
        assert_eq!(row.cells[1 + i], Cell::Int4(i as i32 * 10), "f{i}");
    }
}
