//! From documents to rows: every BSON type, typed tables, fields that drift, tables
//! that exist already, generated documents, names, and a relational model (typed
//! child tables, references, join tables) for a shop.

mod computed;
mod drift;
mod existing_tables;
mod filters;
mod geo;
mod names;
mod properties;
mod relational;
mod transforms;
mod types;
