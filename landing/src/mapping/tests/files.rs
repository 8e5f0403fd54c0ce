//! Mapping files: YAML like TOML, what a bad mapping says, several databases, unknown keys.
use super::*;

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
fn unknown_keys_are_refused() {
    let parsed: Result<MappingFile, _> = toml::from_str(
        r#"
        [collections.users]
        colums = []
        "#,
    );
    assert!(parsed.is_err());
}
