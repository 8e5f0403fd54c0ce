//! Dotted field paths (`address.city`), and the tree of those a table reads, which
//! tells what of a document is left for `_extra`.

use std::collections::BTreeMap;

/// The set of dotted paths a plan reads, as a tree of keys.
#[derive(Debug, Clone, Default)]
pub(super) struct PathTree {
    /// The whole value at this path is read.
    pub(super) whole: bool,
    pub(super) children: BTreeMap<String, PathTree>,
}

impl PathTree {
    pub(super) fn insert(&mut self, path: &[String]) {
        match path.split_first() {
            None => self.whole = true,
            Some((first, rest)) => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }
}

/// A dotted path's keys.
pub(super) fn split_path(path: &str) -> Vec<String> {
    path.split('.').map(str::to_string).collect()
}
