//! Which collections a run of the whole database takes: those whose
//! `database.collection` name an `--include` pattern matches whole (every one, without
//! an `--include`) and no `--exclude` pattern does.

use common::run_state::SelectionPatterns;
use regex::Regex;

use crate::error::SourceError;

/// The patterns, compiled.
#[derive(Debug, Clone)]
pub struct Selection {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
    /// As given, for the run's manifest and messages.
    pub patterns: SelectionPatterns,
}

impl Selection {
    /// Compiles the patterns, each anchored to match a whole name.
    ///
    /// # Errors
    /// [`SourceError::Pattern`] naming a pattern that is not a regular expression.
    pub fn new(patterns: SelectionPatterns) -> Result<Self, SourceError> {
        let compile = |list: &[String]| {
            list.iter()
                .map(|p| {
                    Regex::new(&format!("^(?:{p})$")).map_err(|e| SourceError::Pattern {
                        pattern: p.clone(),
                        detail: e.to_string().lines().last().unwrap_or_default().to_string(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Selection {
            include: compile(&patterns.include)?,
            exclude: compile(&patterns.exclude)?,
            patterns,
        })
    }

    /// Whether any pattern was given.
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// `Ok` when the run reading `source` takes the collection it calls `name`, else
    /// why not.
    ///
    /// # Errors
    /// Why the collection is left out (its text is what `status` shows).
    pub fn verdict_on(&self, source: &crate::Source, name: &str) -> Result<(), LeftOut> {
        let (database, collection) = source.split(name);
        self.verdict(database, collection)
    }

    /// `Ok` when the run takes `collection` of `database`, else why not.
    ///
    /// # Errors
    /// Why the collection is left out (its text is what `status` shows).
    pub fn verdict(&self, database: &str, collection: &str) -> Result<(), LeftOut> {
        let name = format!("{database}.{collection}");
        if !self.include.is_empty() && !self.include.iter().any(|r| r.is_match(&name)) {
            return Err(LeftOut::NotIncluded);
        }
        if let Some(r) = self.exclude.iter().find(|r| r.is_match(&name)) {
            // As given: without the anchors `new` added.
            let pattern = r.as_str()[4..r.as_str().len() - 2].to_string();
            return Err(LeftOut::Excluded { pattern });
        }
        Ok(())
    }
}

/// Why a run leaves a collection out; the run's manifest keeps the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeftOut {
    /// `--include` patterns were given and none matches the collection.
    #[error("no --include matches it")]
    NotIncluded,
    /// An `--exclude` pattern matches the collection.
    #[error("--exclude '{pattern}' matches it")]
    Excluded {
        /// The pattern, as given.
        pattern: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_names_and_exclude_wins() {
        let selection = Selection::new(SelectionPatterns {
            include: vec![r"app\.orders_.*".to_string(), r"app\.users".to_string()],
            exclude: vec![r".*_archive".to_string()],
        })
        .expect("compiles");
        assert_eq!(selection.verdict("app", "orders_2024"), Ok(()));
        assert_eq!(selection.verdict("app", "users"), Ok(()));
        assert_eq!(
            selection.verdict("app", "users_old"),
            Err(LeftOut::NotIncluded),
            "anchored: a prefix is not a match"
        );
        let excluded = selection.verdict("app", "orders_archive");
        assert_eq!(
            excluded,
            Err(LeftOut::Excluded {
                pattern: ".*_archive".to_string()
            })
        );
        assert_eq!(
            excluded.map_err(|why| why.to_string()),
            Err("--exclude '.*_archive' matches it".to_string())
        );
        assert!(Selection::new(SelectionPatterns {
            include: vec!["(".to_string()],
            exclude: vec![]
        })
        .is_err());
    }
}
