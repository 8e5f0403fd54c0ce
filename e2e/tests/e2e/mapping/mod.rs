//! From documents to rows: every BSON type, typed tables, fields that drift, tables
//! that exist already, generated documents, names.

mod drift;
mod existing_tables;
mod names;
mod properties;
mod types;
