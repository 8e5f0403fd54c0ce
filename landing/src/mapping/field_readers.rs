//! Which columns and child tables read each top-level field of a document: found once
//! per plan, so that [`TablePlan::row`]'s pass over a document's fields finds a
//! field's readers by one comparison instead of asking every column.
//!
//! Asking every column cost a comparison per column per field (196 for the 14 fields of
//! the benchmark's users), each through the column's source: a sixth of the mapping's
//! time. Documents of a collection mostly come with their fields in one order, so the
//! order of the first document mapped is learned: a field is first looked for where
//! the first document had it, then among all keys read.

use std::sync::OnceLock;

/// The readers of each top-level key a plan reads.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldReaders {
    keys: Vec<KeyReaders>,
    /// For each position of the first document mapped, what its field was.
    learned: OnceLock<Vec<Learned>>,
}

/// The columns and child tables reading one top-level key, in plan order.
#[derive(Debug, Clone)]
pub(crate) struct KeyReaders {
    key: String,
    /// Indexes into the plan's columns.
    pub(crate) columns: Vec<usize>,
    /// Indexes into the plan's child tables.
    pub(crate) children: Vec<usize>,
}

/// The field at one position of the first document mapped.
#[derive(Debug, Clone)]
enum Learned {
    /// Read: its index in [`FieldReaders::keys`].
    Read(usize),
    /// Read by no column or child table.
    Unread(Box<str>),
}

impl FieldReaders {
    /// The readers of every top-level key read by `columns` and `children` (each the
    /// top-level key it reads, if any, in plan order).
    pub(crate) fn of<'k>(
        columns: impl IntoIterator<Item = Option<&'k str>>,
        children: impl IntoIterator<Item = Option<&'k str>>,
    ) -> Self {
        let mut keys: Vec<KeyReaders> = Vec::new();
        let mut entry = |key: &str| match keys.iter().position(|k| k.key == key) {
            Some(at) => at,
            None => {
                keys.push(KeyReaders {
                    key: key.to_string(),
                    columns: Vec::new(),
                    children: Vec::new(),
                });
                keys.len() - 1
            }
        };
        let columns: Vec<(usize, usize)> = columns
            .into_iter()
            .enumerate()
            .filter_map(|(i, key)| Some((entry(key?), i)))
            .collect();
        let children: Vec<(usize, usize)> = children
            .into_iter()
            .enumerate()
            .filter_map(|(i, key)| Some((entry(key?), i)))
            .collect();
        for (at, i) in columns {
            keys[at].columns.push(i);
        }
        for (at, i) in children {
            keys[at].children.push(i);
        }
        FieldReaders {
            keys,
            learned: OnceLock::new(),
        }
    }

    /// The readers of the field `key` found at `position` of a document; `None` when
    /// nothing reads it.
    pub(crate) fn find(&self, key: &str, position: usize) -> Option<&KeyReaders> {
        match self.learned.get().and_then(|learned| learned.get(position)) {
            Some(Learned::Read(at)) if self.keys[*at].key == key => Some(&self.keys[*at]),
            Some(Learned::Unread(unread)) if **unread == *key => None,
            _ => self.keys.iter().find(|k| k.key == key),
        }
    }

    /// Whether the order of fields is still to be learned: then [`FieldReaders::learn`]
    /// wants the keys of the document being mapped.
    pub(crate) fn learning(&self) -> bool {
        self.learned.get().is_none()
    }

    /// Learns the order of fields from one document's keys (the first mapped; later
    /// calls change nothing).
    pub(crate) fn learn<'k>(&self, keys: impl IntoIterator<Item = &'k str>) {
        let learned = keys
            .into_iter()
            .map(|key| match self.keys.iter().position(|k| k.key == key) {
                Some(at) => Learned::Read(at),
                None => Learned::Unread(key.into()),
            })
            .collect();
        let _ = self.learned.set(learned);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::tests::nested_plan as plan;
    use crate::mapping::TablePlan;

    fn of(plan: &TablePlan) -> FieldReaders {
        FieldReaders::of(
            plan.columns.iter().map(|c| c.source.top_key()),
            plan.children
                .iter()
                .map(|c| c.path.first().map(String::as_str)),
        )
    }

    fn readers_of(
        readers: &FieldReaders,
        key: &str,
        at: usize,
    ) -> Option<(Vec<usize>, Vec<usize>)> {
        readers
            .find(key, at)
            .map(|k| (k.columns.clone(), k.children.clone()))
    }

    #[test]
    fn each_key_has_its_columns_in_plan_order_and_its_child_tables() {
        let plan = plan();
        let readers = of(&plan);
        let column = |name: &str| plan.columns.iter().position(|c| c.name == name);
        let (city, address) = (
            column("city").expect("city"),
            column("address").expect("address"),
        );
        assert_eq!(
            readers_of(&readers, "address", 0),
            Some((vec![city, address], vec![]))
        );
        assert_eq!(readers_of(&readers, "tags", 0), Some((vec![], vec![0])));
        assert_eq!(
            readers_of(&readers, "age", 3),
            Some((vec![column("age").expect("age")], vec![]))
        );
        assert_eq!(readers_of(&readers, "nickname", 1), None);
    }

    #[test]
    fn a_learned_order_is_a_guess_checked_against_the_key() {
        let plan = plan();
        let readers = of(&plan);
        assert!(readers.learning());
        readers.learn(["_id", "nickname", "age", "address"]);
        assert!(!readers.learning());
        // In the learned order, out of it, unread where a read key was and the reverse.
        let age = readers_of(&readers, "age", 2);
        assert!(age.is_some());
        assert_eq!(readers_of(&readers, "age", 0), age);
        assert_eq!(readers_of(&readers, "nickname", 1), None);
        assert_eq!(readers_of(&readers, "nickname", 2), None);
        assert_eq!(
            readers_of(&readers, "address", 1),
            readers_of(&readers, "address", 3)
        );
        assert!(readers_of(&readers, "address", 1).is_some());
        // Past the learned positions.
        assert_eq!(readers_of(&readers, "tags", 9), Some((vec![], vec![0])));
        // Learning again changes nothing.
        readers.learn(["age"]);
        assert_eq!(
            readers_of(&readers, "_id", 0),
            readers_of(&readers, "_id", 5)
        );
    }
}
