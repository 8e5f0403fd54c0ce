//! New fields becoming columns when their values fit, up to the limit.
use super::*;

#[test]
fn new_fields_become_columns_when_their_values_fit() {
    let plan = plan_of(
        r#"
        [collections.c]
        new_fields = "columns"
        columns = [ { path = "_id", type = "int4" }, { path = "a.b", type = "text" } ]
        "#,
    );
    let docs = [
        rawdoc! { "_id": 1, "a": { "b": "x", "c": 1 }, "score": bson::RawBson::Null, "": 1 },
        rawdoc! { "_id": 2, "score": 7, "tags": ["t"], "_extra": "mine" },
    ];
    let new = plan.new_fields_in(docs.iter().map(|d| d.as_bytes()));
    let seen: Vec<(&str, ColumnType)> = new
        .iter()
        .map(|n| (n.field.as_str(), n.kind.column_type()))
        .collect();
    // Nested fields, empty keys and nulls say nothing a column could be made of.
    assert_eq!(
        seen,
        [
            ("score", ColumnType::Int8),
            ("tags", ColumnType::Jsonb),
            ("_extra", ColumnType::Text)
        ]
    );
    let added: Vec<AddedColumn> = new
        .into_iter()
        .map(|n| AddedColumn {
            name: if n.field == "_extra" {
                "_extra_1".to_string()
            } else {
                n.field.clone()
            },
            field: n.field,
            kind: n.kind,
        })
        .collect();
    let plan = plan.with_added(&added);
    assert!(plan
        .new_fields_in(docs.iter().map(|d| d.as_bytes()))
        .is_empty());
    let names: Vec<&str> = plan.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["_id", "a_b", "_extra", "score", "tags", "_extra_1"]);

    let row = plan.row(&docs[1]).expect("maps");
    assert_eq!(row.cells[3], Cell::Int8(7));
    assert_eq!(json(&row.cells[4]), serde_json::json!(["t"]));
    assert_eq!(row.cells[5], Cell::Text("mine".into()));
    assert_eq!(row.cells[2], Cell::Null, "nothing left for _extra");
    // Null, and values of another kind, stay in _extra: a document lands the same
    // whether the column existed when it was mapped or not.
    let row = plan.row(&docs[0]).expect("maps");
    assert_eq!(row.cells[3], Cell::Null);
    assert_eq!(
        json(&row.cells[2]),
        serde_json::json!({ "a": { "c": { "$numberInt": "1" } }, "score": null, "": { "$numberInt": "1" } })
    );
    let row = plan
        .row(&rawdoc! { "_id": 3, "score": "high", "tags": { "k": true } })
        .expect("maps");
    assert_eq!(row.cells[3], Cell::Null);
    assert_eq!(json(&row.cells[4]), serde_json::json!({ "k": true }));
    assert_eq!(json(&row.cells[2]), serde_json::json!({ "score": "high" }));
    // A field the mapping reads now is left to the mapping.
    let mapped = plan_of(
        r#"
        [collections.c]
        columns = [ { path = "_id", type = "int4" }, { path = "score", type = "int4" } ]
        "#,
    )
    .with_added(&added);
    let names: Vec<&str> = mapped.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["_id", "score", "_extra", "tags", "_extra_1"]);
    assert!(
        mapped.new_fields_in([docs[1].as_bytes()]).is_empty(),
        "the option is off"
    );
    // A column the mapping has since named like an added one: never twice in the
    // plan, and the added column's field goes to _extra without being added again.
    let renamed = plan_of(
        r#"
        [collections.c]
        new_fields = "columns"
        columns = [ { path = "_id", type = "int4" }, { name = "TAGS", path = "labels", type = "text" } ]
        "#,
    )
    .with_added(&added);
    let names: Vec<&str> = renamed.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["_id", "TAGS", "_extra", "score", "_extra_1"]);
    assert!(renamed.new_fields_in([docs[1].as_bytes()]).is_empty());
    let row = renamed.row(&docs[1]).expect("maps");
    assert_eq!(json(&row.cells[2]), serde_json::json!({ "tags": ["t"] }));
}

#[test]
fn new_fields_stop_becoming_columns_at_the_limit() {
    let text = r#"
        [collections.c]
        new_fields = "columns"
        max_new_columns = 2
        columns = [ { path = "_id", type = "int4" } ]
        "#;
    let plan = plan_of(text);
    let doc = rawdoc! { "_id": 1, "a": 1, "b": 2, "c": 3 };
    assert_eq!(plan.new_fields_in([doc.as_bytes()]).len(), 3);
    let added = ["a", "b"].map(|field| AddedColumn {
        field: field.to_string(),
        name: field.to_string(),
        kind: FieldKind::Integer,
    });
    let plan = plan.with_added(&added);
    assert!(plan.new_fields_in([doc.as_bytes()]).is_empty());
    let row = plan.row(&doc).expect("maps");
    assert_eq!(row.cells[2..], [Cell::Int8(1), Cell::Int8(2)]);
    assert_eq!(
        json(&row.cells[1]),
        serde_json::json!({ "c": { "$numberInt": "3" } })
    );

    let too_many = text.replace("= 2", "= 1599");
    let err = toml::from_str::<MappingFile>(&too_many)
        .expect("parses")
        .check()
        .expect_err("refused");
    assert!(err.to_string().contains("1600"), "{err}");
}
