//! The relational model: child tables, references, keys and generated names.
use super::*;

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
