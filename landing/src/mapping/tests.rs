use super::*;
use crate::cell::Cell;
use crate::column_type::ColumnType;
use bson::rawdoc;

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
fn yaml_files_read_like_toml_ones() {
    let dir = std::env::temp_dir().join(format!("mapping-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("m.yaml");
    std::fs::write(
        &path,
        "collections:\n  users:\n    table: people\n    columns:\n      - { name: id, path: _id, type: text }\n      - { name: age, path: age, type: int4 }\n",
    )
    .expect("write");
    let plan = MappingFile::load(&path).expect("loads").plan("users");
    assert_eq!(plan.table, "people");
    assert_eq!(plan.columns[1].ty, ColumnType::Int4);
    std::fs::write(&path, "collections:\n  users:\n    colums: []\n").expect("write");
    assert!(
        MappingFile::load(&path).is_err(),
        "unknown keys refused in YAML too"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn plan_of(toml_text: &str) -> TablePlan {
    let file: MappingFile = toml::from_str(toml_text).expect("parses");
    file.check().expect("valid");
    file.plan("c")
}

fn json(cell: &Cell) -> serde_json::Value {
    match cell {
        Cell::Jsonb(text) => serde_json::from_str(text).expect("json"),
        other => panic!("not jsonb: {other:?}"),
    }
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
fn arrays_land_in_child_tables_with_their_positions() {
    let plan = plan_of(
        r#"
        [collections.c]
        table = "people"
        columns = [ { name = "id", path = "_id", type = "int8" } ]
        children = [ { path = "tags", type = "text" } ]
        "#,
    );
    assert_eq!(plan.children[0].table, "people_tags");
    let row = plan
        .row(&rawdoc! { "_id": 7, "tags": ["a", "b"] })
        .expect("maps");
    assert_eq!(
        row.children[0],
        vec![
            vec![Cell::Int8(7), Cell::Int4(0), Cell::Text("a".into())],
            vec![Cell::Int8(7), Cell::Int4(1), Cell::Text("b".into())],
        ]
    );
    assert_eq!(row.cells[1], Cell::Null, "tags are read, not extra");
    let err = plan
        .row(&rawdoc! { "_id": 8, "tags": ["a", 1] })
        .expect_err("refused");
    assert_eq!(err.field, "tags[1]");
    let err = plan
        .row(&rawdoc! { "_id": 9, "tags": "a" })
        .expect_err("refused");
    assert_eq!(err.found, "string");
}

/// Columns reading one field whole and inside (`address`), a plain one and a child
/// table: for the tests of how a document's fields find their readers.
pub(super) fn nested_plan() -> TablePlan {
    plan_of(
        r#"
        [collections.c]
        columns = [
          { name = "id", path = "_id", type = "int8" },
          { name = "city", path = "address.city", type = "text" },
          { name = "address", path = "address", type = "jsonb" },
          { name = "age", path = "age", type = "int4" },
        ]
        children = [ { path = "tags", type = "text" } ]
        "#,
    )
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

#[test]
fn bad_mappings_say_what_to_change() {
    let check = |text: &str| {
        toml::from_str::<MappingFile>(text)
            .expect("parses")
            .check()
            .expect_err("refused")
    };
    let long = "x".repeat(64);
    let err = check(&format!(
        "[collections.c]\ncolumns = [ {{ name = \"{long}\", path = \"a\", type = \"text\" }} ]"
    ));
    assert!(err.to_string().contains("63"), "{err}");
    let err = check(
        "[collections.c]\ncolumns = [ { path = \"a\", type = \"text\" } ]\nchildren = [ { path = \"t\", type = \"text\" } ]",
    );
    assert!(err.to_string().contains("_id"), "{err}");
}

#[test]
fn each_database_of_a_run_of_several_lands_where_its_entry_says() {
    let file: MappingFile = toml::from_str(
        r#"
schema = "landed"

[databases.shop]
schema = "shop"

[databases.crm]
prefix = "crm_"

[collections."shop.items"]
columns = [ { path = "_id", type = "int8" } ]

[collections."crm.notes"]
schema = "notes"
columns = [ { path = "_id", type = "int8" } ]
"#,
    )
    .expect("parses");
    file.check().expect("valid");
    let table = |collection: &str| file.plan(collection).table;
    assert_eq!(table("shop.orders"), "shop.orders");
    assert_eq!(
        table("shop.items"),
        "shop.items",
        "mapped: the entry's schema"
    );
    assert_eq!(table("crm.people"), "landed.crm_people");
    assert_eq!(table("crm.notes"), "notes.crm_notes", "its own schema wins");
    assert_eq!(
        table("other.c"),
        "landed.other_c",
        "no entry: under its name"
    );

    let bad: MappingFile = toml::from_str("[databases.shop]\nschema = \"a.b\"").expect("parses");
    let err = bad.check().expect_err("refused");
    assert!(
        err.to_string().starts_with("collection \"shop.*\""),
        "{err}"
    );
}

#[test]
fn generated_names_never_collide() {
    let long_a = format!("{}.a", "k".repeat(70));
    let long_b = format!("{}.b", "k".repeat(70));
    let plan = plan_of(&format!(
        r#"
        [collections.c]
        columns = [
          {{ path = "_id", type = "text" }},
          {{ path = "Name", type = "text" }},
          {{ path = "name", type = "text" }},
          {{ path = "{long_a}", type = "text" }},
          {{ path = "{long_b}", type = "text" }},
        ]
        "#
    ));
    let names: std::collections::HashSet<String> =
        plan.columns.iter().map(|c| c.name.to_lowercase()).collect();
    assert_eq!(names.len(), plan.columns.len());
    assert!(plan.columns.iter().all(|c| c.name.len() <= 63));
}

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

#[test]
fn unknown_keys_are_refused() {
    let parsed: Result<MappingFile, _> = toml::from_str(
        r#"
        [collections.users]
        colums = []
        "#,
    );
    assert!(parsed.is_err());
}

/// The shop's orders: typed order lines two levels deep, references (an ObjectId, a
/// DBRef, an array of ObjectIds as a join table), snake_case names in a schema.
fn shop_plan() -> TablePlan {
    let file: MappingFile = toml::from_str(
        r#"
        naming = "snake_case"
        schema = "shop"

        [collections.products]
        columns = [ { path = "_id", type = "text" } ]

        [collections.orders]
        columns = [
          { path = "_id", type = "text" },
          { path = "userId", type = "text", references = "users", required = true },
          { path = "createdAt", type = "timestamptz" },
          { path = "coupon", type = "text", references = "coupons" },
        ]
        children = [
          { path = "items", table = "order_items", parent_column = "order_id", columns = [
              { name = "product_id", path = "productId", type = "text", references = "products" },
              { path = "qty", type = "int4", required = true },
            ], children = [
              { path = "options", columns = [ { path = "name", type = "text" } ] },
            ] },
          { path = "likedBy", type = "text", references = "users", name = "user_id" },
        ]
        "#,
    )
    .expect("parses");
    file.check().expect("valid");
    file.plan("orders")
}

#[test]
fn typed_child_tables_nest_and_reference() {
    let plan = shop_plan();
    assert_eq!(plan.table, "shop.orders");
    let names: Vec<&str> = plan.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["_id", "user_id", "created_at", "coupon", "_extra"]);
    let tables: Vec<&str> = plan.children.iter().map(|c| c.table.as_str()).collect();
    assert_eq!(
        tables,
        [
            "shop.order_items",
            "shop.order_items_options",
            "shop.orders_liked_by"
        ]
    );
    let columns = |i: usize| -> Vec<&str> {
        plan.children[i]
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect()
    };
    assert_eq!(
        columns(0),
        ["order_id", "_position", "product_id", "qty", "_extra"]
    );
    assert_eq!(
        columns(1),
        ["_parent", "_items_position", "_position", "name", "_extra"]
    );
    assert_eq!(columns(2), ["_parent", "_position", "user_id"]);
    assert_eq!(plan.children[1].primary_key, [0, 1, 2]);

    let order = bson::oid::ObjectId::new();
    let user = bson::oid::ObjectId::new();
    let product = bson::oid::ObjectId::new();
    let doc = rawdoc! {
        "_id": order,
        "userId": user,
        "coupon": { "$ref": "coupons", "$id": "SPRING" },
        "items": [
            { "productId": product, "qty": 2, "gift": true, "options": [ { "name": "wrap", "color": "red" } ] },
            { "productId": product, "qty": 1 },
        ],
        "likedBy": [user],
    };
    let row = plan.row(&doc).expect("maps");
    let key = Cell::Text(order.to_hex());
    assert_eq!(row.cells[1], Cell::Text(user.to_hex()), "joins users._id");
    // A DBRef lands as its $id, converted as the key of coupons (text, id_text).
    assert_eq!(row.cells[3], Cell::Text("SPRING".into()));
    assert_eq!(row.cells[4], Cell::Null, "every field read");
    assert_eq!(
        row.children[0],
        vec![
            vec![
                key.clone(),
                Cell::Int4(0),
                Cell::Text(product.to_hex()),
                Cell::Int4(2),
                Cell::Jsonb(r#"{"gift":true}"#.into()),
            ],
            vec![
                key.clone(),
                Cell::Int4(1),
                Cell::Text(product.to_hex()),
                Cell::Int4(1),
                Cell::Null,
            ],
        ]
    );
    assert_eq!(
        row.children[1],
        vec![vec![
            key.clone(),
            Cell::Int4(0),
            Cell::Int4(0),
            Cell::Text("wrap".into()),
            Cell::Jsonb(r#"{"color":"red"}"#.into()),
        ]]
    );
    assert_eq!(
        row.children[2],
        vec![vec![key, Cell::Int4(0), Cell::Text(user.to_hex())]]
    );
}

#[test]
fn rejects_name_the_element_and_required_fields() {
    let plan = shop_plan();
    let user = bson::oid::ObjectId::new();
    let err = plan
        .row(&rawdoc! { "_id": 1, "userId": user, "items": [ { "qty": 1 }, { "qty": 1 }, { "qty": 1 }, { "qty": "two" } ] })
        .expect_err("refused");
    assert_eq!(err.field, "items[3].qty");
    let err = plan
        .row(&rawdoc! { "_id": 1, "userId": user, "items": [ { "qty": 1, "options": [ 5 ] } ] })
        .expect_err("refused");
    assert_eq!(err.field, "items[0].options[0]");
    let err = plan
        .row(&rawdoc! { "_id": 1, "userId": user, "items": [ { "productId": 1 } ] })
        .expect_err("refused");
    assert_eq!(err.field, "items[0].qty");
    assert!(err.reason.contains("required"), "{err}");
    let err = plan.row(&rawdoc! { "_id": 1 }).expect_err("refused");
    assert_eq!(err.field, "userId");
    let err = plan
        .row(&rawdoc! { "_id": 1, "userId": { "$ref": "admins", "$id": user } })
        .expect_err("refused");
    assert!(err.reason.contains("DBRef to \"admins\""), "{err}");
}

#[test]
fn child_keys_can_be_element_fields() {
    let plan = plan_of(
        r#"
        [collections.c]
        columns = [ { path = "_id", type = "int4" } ]
        children = [ { path = "variants", key = "sku", columns = [
            { path = "sku", type = "text" },
            { path = "stock", type = "int4" },
        ], children = [ { path = "sizes", type = "text" } ] } ]
        "#,
    );
    let variants = &plan.children[0];
    let names: Vec<&str> = variants.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["_parent", "sku", "stock", "_extra"]);
    assert_eq!(variants.primary_key, [0, 1]);
    let sizes: Vec<&str> = plan.children[1]
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(sizes, ["_parent", "_variants_sku", "_position", "value"]);
    let row = plan
        .row(&rawdoc! { "_id": 1, "variants": [ { "sku": "A", "stock": 3, "sizes": ["S", "M"] } ] })
        .expect("maps");
    assert_eq!(
        row.children[1][1],
        vec![
            Cell::Int4(1),
            Cell::Text("A".into()),
            Cell::Int4(1),
            Cell::Text("M".into())
        ]
    );
    let err = plan
        .row(&rawdoc! { "_id": 1, "variants": [ { "stock": 3 } ] })
        .expect_err("a key is required");
    assert_eq!(err.field, "variants[0].sku");
    let ddl = crate::schema::create_table_sql(&plan);
    assert!(
        ddl.contains("PRIMARY KEY (\"_parent\", \"_variants_sku\", \"_position\")"),
        "{ddl}"
    );
}

#[test]
fn relational_mistakes_are_refused_with_the_fix() {
    let check = |text: &str| {
        toml::from_str::<MappingFile>(text)
            .expect("parses")
            .check()
            .expect_err("refused")
            .to_string()
    };
    let err = check(
        "[collections.o]\ncolumns = [ { path = \"u\", type = \"int4\", references = \"users\" } ]",
    );
    assert!(err.contains("whose key is text"), "{err}");
    let err = check(
        "[collections.o]\ntable = \"a.b.c\"\ncolumns = [ { path = \"u\", type = \"text\" } ]",
    );
    assert!(err.contains("at most one"), "{err}");
    let err = check(
        "[collections.o]\ncolumns = [ { path = \"_id\", type = \"text\" } ]\nchildren = [ { path = \"t\" } ]",
    );
    assert!(err.contains("either `type`"), "{err}");
    let err = check(
        "[collections.o]\ncolumns = [ { path = \"_id\", type = \"text\" } ]\nchildren = [ { path = \"t\", key = \"k\", columns = [ { path = \"x\", type = \"text\" } ] } ]",
    );
    assert!(err.contains("key \"k\""), "{err}");
    let err = check(
        "[collections.o]\ncolumns = [ { path = \"l\", type = \"text[]\", references = \"users\" } ]",
    );
    assert!(err.contains("join table"), "{err}");
}

#[test]
fn generated_names_are_snake_case_and_never_a_dotted_table() {
    let file: MappingFile = toml::from_str(
        r#"
        naming = "snake_case"
        [collections.orderLines]
        columns = [ { path = "_id", type = "text" }, { path = "unitPrice.amount", type = "numeric" } ]
        "#,
    )
    .expect("parses");
    let plan = file.plan("orderLines");
    assert_eq!(plan.table, "order_lines");
    assert_eq!(plan.columns[1].name, "unit_price_amount");
    assert_eq!(file.plan("logs.2024").table, "logs_2024");
    assert_eq!(MappingFile::default().plan("logs.2024").table, "logs_2024");
}

#[test]
fn a_uuid_surrogate_key_is_time_ordered_and_the_same_in_every_reference() {
    let file: MappingFile = toml::from_str(
        r#"
        [collections.users]
        key = "uuid"
        columns = [ { path = "name", type = "text" } ]

        [collections.orders]
        columns = [
          { path = "_id", type = "text" },
          { path = "userId", type = "uuid", references = "users" },
        ]
        children = [ { path = "likedBy", type = "uuid", references = "users" } ]
        "#,
    )
    .expect("parses");
    file.check().expect("valid");
    let users = file.plan("users");
    let orders = file.plan("orders");
    let early = bson::oid::ObjectId::from_bytes([0x60, 0, 0, 0, 9, 9, 9, 9, 9, 0, 0, 1]);
    let late = bson::oid::ObjectId::from_bytes([0x61, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let key = |id| {
        users
            .row(&rawdoc! { "_id": id, "name": "n" })
            .expect("maps")
            .cells[2]
            .clone()
    };
    let (Cell::Uuid(a), Cell::Uuid(b)) = (key(early), key(late)) else {
        panic!("uuid keys")
    };
    assert!(a < b, "later ObjectIds give later keys");
    assert_eq!(a[6] >> 4, 7, "version 7");
    assert_eq!(a[8] >> 6, 0b10, "RFC 4122 variant");
    assert_eq!(
        users.key_cell(bson::RawBsonRef::ObjectId(early)),
        Some(Cell::Uuid(a))
    );
    let row = orders
        .row(&rawdoc! { "_id": "o1", "userId": early, "likedBy": [ { "$ref": "users", "$id": late } ] })
        .expect("maps");
    assert_eq!(
        row.cells[1],
        Cell::Uuid(a),
        "the reference is the user's key"
    );
    assert_eq!(row.children[0][0][2], Cell::Uuid(b), "a DBRef too");
    let err = users
        .row(&rawdoc! { "_id": "u1" })
        .expect_err("no ObjectId");
    assert!(err.reason.contains("ObjectId"), "{err}");
    let wrong = toml::from_str::<MappingFile>(
        "[collections.u]\nkey = \"uuid\"\ncolumns = [ { path = \"_id\", type = \"text\" } ]",
    )
    .expect("parses")
    .check()
    .expect_err("refused");
    assert!(wrong.to_string().contains("type = \"uuid\""), "{wrong}");
}
