//! `mongo2pg infer`: a mapping file and CREATE TABLE statements from a sample.
//!
//! `$sample` draws `--sample` documents spread over each collection, and their shape is
//! counted ([`shape`]): per field, the BSON types seen, how often it was there, the
//! fields of its subdocuments and of its arrays' elements, the ObjectIds it held.
//! References are then looked for across the sampled collections ([`references`]),
//! and each collection's shape becomes a proposal ([`propose`]):
//! - a scalar field becomes a typed column (docs/reference/mapping.md's type table),
//!   `required` when present and not null in every sampled document; ObjectIds and
//!   DBRefs found to be another collection's `_id`s become a reference to it;
//! - a subdocument of at most `--flatten-width` fields is flattened into columns
//!   (`ship_to_city`), down to `--flatten-depth`; deeper or wider ones stay jsonb;
//! - an array of subdocuments becomes a typed child table, its elements proposed like
//!   documents (so nested arrays become nested child tables); an array of references
//!   a join table; an array of one scalar type a PostgreSQL array;
//! - a field seen with several types follows `--multi-type`: `widest` (default) the
//!   narrowest type holding all of them exactly (int + long → int8, int + double →
//!   float8, any mix with long or decimal → numeric, string + objectId → text), jsonb
//!   otherwise; `jsonb` always jsonb; `reject` the most frequent type, documents
//!   with another being rejected with the field named.
//!
//! Names are snake_case, tables land in a schema named after the database
//! (`--schema`). Fields the sample missed are not lost: they land in `_extra`. An
//! existing mapping file is never overwritten without `--force`: the proposal goes
//! next to it, as `<file>.new`.

mod propose;
mod references;
mod shape;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use bson::{doc, RawDocumentBuf};
use futures::TryStreamExt;
use landing::extjson::JsonMode;
use landing::identifier::snake_case;
use landing::mapping::{
    CollectionMapping, DatabaseMapping, InvalidMapping, MappingFile, Missing, Naming,
    DEFAULT_MAX_NEW_COLUMNS,
};

use crate::config::InferConfig;
use propose::{Limits, Proposer};
use shape::Shape;
use source::SourceError;

/// Why `infer` could not write its mapping.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// MongoDB could not be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The mapping could not be written as TOML.
    #[error("infer: cannot render the mapping as TOML: {0}")]
    Render(#[from] toml::ser::Error),
    /// The mapping inferred fails the checks every mapping passes: a bug of ours.
    #[error("infer wrote a mapping it cannot use ({0}); please report this")]
    Invalid(#[from] InvalidMapping),
    /// An output file could not be written.
    #[error("infer: cannot write {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
}

/// What `infer` found and wrote.
pub struct Inferred {
    /// The report printed: each field path with the types seen and how often.
    pub text: String,
}

/// Samples the collections, writes the mapping file and the `CREATE TABLE`
/// statements, and reports what it saw.
///
/// # Errors
/// [`InferError`] when MongoDB cannot be read or a file cannot be written.
pub async fn infer(config: &InferConfig) -> Result<Inferred, InferError> {
    let database = source::connect(&config.mongo).await?;
    let collections = source::collections(
        &database,
        &common::config::collection_names(&config.collections),
    )
    .await?;
    let mut text = String::new();
    let mut shapes = BTreeMap::new();
    for collection in collections {
        let failed = |e: mongodb::error::Error| SourceError::read(collection.clone(), &e);
        let mut cursor = database
            .collection::<RawDocumentBuf>(&collection)
            .aggregate(vec![doc! { "$sample": { "size": config.sample } }])
            .with_type::<RawDocumentBuf>()
            .await
            .map_err(failed)?;
        let mut shape = Shape::default();
        while let Some(raw) = cursor.try_next().await.map_err(failed)? {
            shape.add(&raw, 0);
        }
        let _ = writeln!(text, "{collection}: {} documents sampled", shape.seen);
        shape::describe(&shape, "", &mut text);
        shapes.insert(collection, shape);
    }
    let (references, findings) = references::find(&database, &shapes).await?;
    let limits = Limits {
        depth: config.flatten_depth,
        width: config.flatten_width,
        policy: config.multi_type,
    };
    let schema = match &config.schema {
        Some(schema) if schema.is_empty() => None,
        Some(schema) => Some(schema.clone()),
        None if database.several() => None,
        None => Some(snake_case(database.home().name())),
    };
    let mut file = MappingFile::default();
    file.naming = Naming::SnakeCase;
    if database.several() {
        // Each database in a schema named after it; all in one schema, under a prefix
        // per database, when --schema names one.
        for name in database.names() {
            let placed = match &config.schema {
                None => DatabaseMapping {
                    schema: Some(snake_case(name)),
                    prefix: None,
                },
                Some(_) => DatabaseMapping {
                    schema: None,
                    prefix: Some(format!("{}_", snake_case(name))),
                },
            };
            file.databases.insert(name.clone(), placed);
        }
    }
    file.schema = schema;
    for (collection, shape) in &shapes {
        let table = snake_case(&file.placement(collection).1.replace('.', "_"));
        let proposer = Proposer {
            limits,
            references: &references,
            collection,
        };
        if propose::wide(shape) {
            let _ = writeln!(
                text,
                "{collection}: {} top-level fields: so many look like data used as keys; they stay whole in _extra (jsonb). Map the ones you need by hand",
                propose::top_level_fields(shape)
            );
        }
        let (columns, children) = proposer.collection(shape, &table);
        if columns.is_empty() {
            let _ = writeln!(text, "{collection}: empty, no mapping written");
            continue;
        }
        file.collections.insert(
            collection.clone(),
            CollectionMapping {
                table: Some(table),
                schema: None,
                naming: None,
                key: None,
                filter: None,
                columns,
                children,
                computed: Vec::new(),
                json: JsonMode::Relaxed,
                legacy_uuid: None,
                missing: Missing::Null,
                new_fields: Default::default(),
                max_new_columns: DEFAULT_MAX_NEW_COLUMNS,
            },
        );
    }
    propose::type_references(&mut file);
    for finding in &findings {
        let _ = writeln!(
            text,
            "reference: {} -> {} ({})",
            finding.path, finding.target, finding.how
        );
    }
    let _ = writeln!(
        text,
        "subdocuments of at most {} fields are flattened to columns down to depth {} (--flatten-width, --flatten-depth), deeper or wider ones stay jsonb; arrays of subdocuments become child tables, arrays of references join tables; `required` marks fields present and not null in every sampled document, so a later document without one is a reject",
        limits.width, limits.depth
    );
    file.check().map_err(InferError::from)?;
    let mapping = toml::to_string(&file).map_err(InferError::from)?;
    let header = "# Written by `mongo2pg infer` from a sample: review before migrating.\n# Fields not listed land in each table's _extra jsonb column.\n\n";
    let mapping = format!("{header}{mapping}");
    let mut sql = schema_sql(&file);
    let after = crate::finish::plan_sql(&file, &database).await?;
    if !after.is_empty() {
        sql.push_str("\n-- After the load, `mongo2pg finish` (or `cutover`) runs these: MongoDB's indexes and the\n-- mapping's references as foreign keys.\n");
        sql.push_str(&after);
    }
    let mut written = Vec::new();
    for (path, content) in [(&config.out, &mapping), (&config.sql, &sql)] {
        written.push(write_new(path, content, config.force, &mut text)?);
    }
    let _ = writeln!(
        text,
        "infer: wrote the mapping to {} and its tables to {}",
        written[0].display(),
        written[1].display()
    );
    Ok(Inferred { text })
}

/// The DDL of every table a mapping file names.
pub fn schema_sql(file: &MappingFile) -> String {
    let mut sql = String::new();
    for collection in file.collections.keys() {
        sql.push_str(&landing::schema::create_table_sql(&file.plan(collection)));
    }
    sql
}

/// Writes `content` to `path`, unless a different file is there and `force` is not
/// set: then to `<path>.new`, saying so and what differs.
fn write_new(
    path: &Path,
    content: &str,
    force: bool,
    report: &mut String,
) -> Result<PathBuf, InferError> {
    let existing = std::fs::read_to_string(path).ok();
    let target = match existing {
        Some(old) if !force && old != content => {
            let mut name = path.as_os_str().to_owned();
            name.push(".new");
            let new = PathBuf::from(name);
            let (old_lines, new_lines): (Vec<&str>, Vec<&str>) =
                (old.lines().collect(), content.lines().collect());
            let removed = old_lines.iter().filter(|l| !new_lines.contains(l)).count();
            let added = new_lines.iter().filter(|l| !old_lines.contains(l)).count();
            let _ = writeln!(
                report,
                "infer: {} exists and differs ({removed} lines only in it, {added} only in the new proposal): kept it, wrote {}; compare them (diff {} {}), or run again with --force to overwrite",
                path.display(),
                new.display(),
                path.display(),
                new.display()
            );
            new
        }
        _ => path.to_path_buf(),
    };
    std::fs::write(&target, content).map_err(|source| InferError::Write {
        path: target.display().to_string(),
        source,
    })?;
    Ok(target)
}
