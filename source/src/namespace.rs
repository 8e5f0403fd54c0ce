//! What a run reads: one database, or several, and how its collections are named.
//!
//! A run of one database (`--mongodb-database shop`) names its collections as MongoDB
//! does: `orders`. A run of several (`--mongodb-database shop,billing`, or `*` for
//! every database but MongoDB's own) names each `database.collection`: `shop.orders`,
//! everywhere a collection is named (subjects, the manifest, the mapping's
//! `[collections."shop.orders"]`, `status`, `verify`). A database name holds no dot,
//! so a name's first dot splits it; the choice between the two is the flag's, never a
//! guess from a name (a collection of one database may be called `a.b`).

use mongodb::action::Watch;
use mongodb::{Client, Collection, Database};

use crate::error::SourceError;

/// MongoDB's own databases: never read by a run of every database, and no change
/// stream carries their changes.
pub const SYSTEM_DATABASES: [&str; 3] = ["admin", "config", "local"];

/// The databases `--mongodb-database` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Databases {
    /// One database: collections are named as MongoDB names them.
    One(String),
    /// Several, by name: collections are named `database.collection`.
    Named(Vec<String>),
    /// Every database but MongoDB's own, those created later included.
    All,
}

impl Databases {
    /// Reads `--mongodb-database`: a name, names separated by commas, or `*`.
    ///
    /// # Errors
    /// [`SourceError::DatabaseName`] for an empty name or one MongoDB would refuse.
    pub fn parse(spec: &str) -> Result<Self, SourceError> {
        let spec = spec.trim();
        if spec == "*" {
            return Ok(Databases::All);
        }
        let mut names: Vec<String> = Vec::new();
        for name in spec.split(',').map(str::trim) {
            let refused = name.is_empty()
                || name.len() > 63
                || name.contains(['/', '\\', '.', ' ', '"', '$', '*', '<', '>', ':', '|', '?']);
            if refused {
                return Err(SourceError::DatabaseName {
                    name: name.to_string(),
                    spec: spec.to_string(),
                });
            }
            if !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
        Ok(if spec.contains(',') {
            Databases::Named(names)
        } else {
            Databases::One(names.remove(0))
        })
    }
}

/// The source of a run: a client and the databases it reads.
#[derive(Debug, Clone)]
pub struct Source {
    client: Client,
    /// The database commands that concern no collection run on.
    home: Database,
    databases: Databases,
    /// The databases read, by name; for [`Databases::All`], those there were at
    /// connection.
    names: Vec<String>,
}

impl Source {
    /// The source of `databases` through `client`; [`Databases::All`] lists the
    /// server's databases.
    pub(crate) async fn new(client: Client, databases: Databases) -> Result<Self, SourceError> {
        let names = match &databases {
            Databases::One(name) => vec![name.clone()],
            Databases::Named(names) => names.clone(),
            Databases::All => {
                let mut names = client
                    .list_database_names()
                    .await
                    .map_err(|e| SourceError::read("(listing databases)", &e))?;
                names.retain(|name| !SYSTEM_DATABASES.contains(&name.as_str()));
                names.sort();
                names
            }
        };
        let home = client.database(match &databases {
            Databases::One(name) => name,
            _ => "admin",
        });
        Ok(Source {
            client,
            home,
            databases,
            names,
        })
    }

    /// Whether collections are named `database.collection`.
    pub fn several(&self) -> bool {
        !matches!(self.databases, Databases::One(_))
    }

    /// The databases asked for.
    pub fn databases(&self) -> &Databases {
        &self.databases
    }

    /// The databases read, by name.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The databases in words, for messages.
    pub fn shown(&self) -> String {
        match &self.databases {
            Databases::One(name) => name.clone(),
            Databases::Named(names) => names.join(", "),
            Databases::All => "every database".to_string(),
        }
    }

    /// The database commands that concern no collection run on (`hello`, `ping`).
    pub fn home(&self) -> &Database {
        &self.home
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A collection's database and name in MongoDB.
    pub fn split<'k>(&'k self, name: &'k str) -> (&'k str, &'k str) {
        match &self.databases {
            Databases::One(database) => (database, name),
            _ => name.split_once('.').unwrap_or(("", name)),
        }
    }

    /// What the run calls collection `collection` of `database`.
    pub fn name_of(&self, database: &str, collection: &str) -> String {
        if self.several() {
            format!("{database}.{collection}")
        } else {
            collection.to_string()
        }
    }

    /// Whether the run reads `database`.
    pub fn reads(&self, database: &str) -> bool {
        match &self.databases {
            Databases::All => !SYSTEM_DATABASES.contains(&database),
            _ => self.names.iter().any(|n| n == database),
        }
    }

    /// The collection the run calls `name`.
    pub fn collection<T: Send + Sync>(&self, name: &str) -> Collection<T> {
        let (database, collection) = self.split(name);
        self.client.database(database).collection(collection)
    }

    /// A change stream over the run's database, or over the whole deployment for a run
    /// of several (its pipeline keeps the run's databases).
    pub fn watch(&self) -> Watch<'_> {
        match &self.databases {
            Databases::One(_) => self.home.watch(),
            _ => self.client.watch(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_name_several_or_every_database() {
        assert_eq!(
            Databases::parse("shop").ok(),
            Some(Databases::One("shop".to_string()))
        );
        assert_eq!(
            Databases::parse("shop, billing,shop").ok(),
            Some(Databases::Named(vec![
                "shop".to_string(),
                "billing".to_string()
            ]))
        );
        assert_eq!(Databases::parse("*").ok(), Some(Databases::All));
        for bad in ["", "a,,b", "a.b", "a b"] {
            assert!(Databases::parse(bad).is_err(), "{bad:?} is refused");
        }
    }
}
