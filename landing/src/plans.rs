//! The plans one connection lands with, kept current with the columns added for new
//! fields.
//!
//! A writer (or `replay`, or `verify --repair`) asks for the plan of each batch's
//! collection with the batch's documents. The first time, the target table is made
//! sure of with every column added so far. After that, only a batch holding a field
//! with no column yet costs a trip to PostgreSQL: the column is added (or found added
//! by another writer) before the batch is mapped, so every document holding the field
//! lands with it in its column, whichever writer took it.

use std::collections::HashMap;

use tokio_postgres::Client;

use crate::added_columns::{self, RegistryError};
use crate::mapping::{MappingFile, TablePlan};
use crate::schema;

/// The table plans one connection lands with, by collection: made (and the tables
/// checked or created) the first time a collection is met, kept current with the
/// columns added for new fields.
#[derive(Debug, Default)]
pub struct Plans {
    ready: HashMap<String, TablePlan>,
    key_after_load: bool,
}

impl Plans {
    /// Plans whose new tables get their primary key after the load (`consumer run
    /// --key-after-load`, see [`crate::keys`]) when `key_after_load`.
    pub fn new(key_after_load: bool) -> Self {
        Plans {
            ready: HashMap::new(),
            key_after_load,
        }
    }

    /// The plan to land `docs` of `collection` with: its tables exist, and every new
    /// field in `docs` has its column when the mapping asks for columns.
    pub async fn for_documents<'a>(
        &mut self,
        client: &mut Client,
        mapping: &MappingFile,
        run: &str,
        collection: &str,
        docs: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<&TablePlan, RegistryError> {
        let mut plan = match self.ready.remove(collection) {
            Some(plan) => plan,
            None => {
                let table = &mapping.plan(collection).table;
                if crate::mapping::is_reserved(table) {
                    return Err(RegistryError::Reserved {
                        collection: collection.to_string(),
                        table: table.clone(),
                    });
                }
                let plan = load(client, mapping, collection).await?;
                // The ledger outlives a table dropped by hand: recreated, the table
                // would hold only the later batches under a run that looks landed.
                if crate::ledger::dropped_under_run(client, run, &plan.table).await? {
                    return Err(RegistryError::Dropped {
                        table: plan.table.clone(),
                        run: run.to_string(),
                    });
                }
                let load = crate::keys::KeyAfterLoad { run, collection };
                schema::ensure_table(
                    client,
                    &plan,
                    Some(run),
                    self.key_after_load.then_some(&load),
                )
                .await?;
                plan
            }
        };
        let new = plan.new_fields_in(docs);
        if !new.is_empty() {
            let added = added_columns::add(client, &plan, &new).await?;
            plan = mapping.plan(collection).with_added(&added);
        }
        Ok(self.ready.entry(collection.to_string()).or_insert(plan))
    }
}

impl Plans {
    /// Forgets a collection's plan, so the next batch makes sure of its tables again
    /// (after a failed write: the table may have been dropped or altered).
    pub fn forget(&mut self, collection: &str) {
        self.ready.remove(collection);
    }
}

/// A collection's plan with the columns added to its table so far, for reading the
/// table as the writers filled it. Columns added under `new_fields = "columns"` keep
/// being filled after the mapping turns the option off, so they are loaded either way.
pub async fn load(
    client: &Client,
    mapping: &MappingFile,
    collection: &str,
) -> Result<TablePlan, RegistryError> {
    let plan = mapping.plan(collection);
    let added = added_columns::load(client, &plan.table).await?;
    Ok(plan.with_added(&added))
}
