//! Finding references in a sample: a field whose values are ObjectIds (or DBRefs)
//! refers to the collection where those values exist as `_id`s; a DBRef names its
//! collection itself.

use std::collections::BTreeMap;

use bson::{doc, Document};
use landing::identifier::snake_case;
use source::Source;
use source::SourceError;

use super::propose::Found;
use super::shape::{Field, Shape};

/// One field that may hold references: where it is and what it held.
struct Candidate<'a> {
    collection: &'a str,
    path: String,
    field: &'a Field,
}

/// A reference found, for the report.
pub(super) struct Finding {
    /// `orders.items[].productId`.
    pub(super) path: String,
    /// The collection referred to.
    pub(super) target: String,
    /// How it was found.
    pub(super) how: String,
}

/// The references in the sampled collections: per collection and path, the
/// collection referred to, with how each was found.
pub(super) async fn find(
    database: &Source,
    shapes: &BTreeMap<String, Shape>,
) -> Result<(Found, Vec<Finding>), SourceError> {
    let mut candidates = Vec::new();
    for (collection, shape) in shapes {
        collect(collection, shape, "", &mut candidates);
    }
    let mut found = Found::new();
    let mut findings = Vec::new();
    for candidate in candidates {
        let Some((target, how)) = resolve(database, shapes, &candidate).await? else {
            continue;
        };
        findings.push(Finding {
            path: format!("{}.{}", candidate.collection, candidate.path),
            target: target.clone(),
            how,
        });
        found.insert((candidate.collection.to_string(), candidate.path), target);
    }
    Ok((found, findings))
}

fn collect<'a>(collection: &'a str, shape: &'a Shape, prefix: &str, out: &mut Vec<Candidate<'a>>) {
    for (name, field) in &shape.fields {
        if prefix.is_empty() && name == "_id" {
            continue;
        }
        let path = format!("{prefix}{name}");
        if field.holds_references() {
            out.push(Candidate {
                collection,
                path: path.clone(),
                field,
            });
        }
        if let Some(inner) = &field.document {
            collect(collection, inner, &format!("{path}."), out);
        }
        if let Some(elements) = &field.elements {
            let path = format!("{path}[]");
            if elements.holds_references() {
                out.push(Candidate {
                    collection,
                    path: path.clone(),
                    field: elements,
                });
            }
            if let Some(inner) = &elements.document {
                collect(collection, inner, &format!("{path}."), out);
            }
        }
    }
}

/// The collection a candidate refers to: its DBRefs' one target, else the sampled
/// collection holding most of its ObjectIds as `_id`s (a name like `userId` breaking
/// ties), else the collection its name says when none of its ids was found.
async fn resolve(
    database: &Source,
    shapes: &BTreeMap<String, Shape>,
    candidate: &Candidate<'_>,
) -> Result<Option<(String, String)>, SourceError> {
    let field = candidate.field;
    if field.dbrefs.len() == 1 {
        let target = field.dbrefs.iter().next().cloned().unwrap_or_default();
        return Ok(Some((target, "DBRef".to_string())));
    }
    let named = named_collection(&candidate.path, shapes.keys());
    let ids: Vec<_> = field.ids.iter().copied().collect();
    let mut best: Option<(u64, bool, &String)> = None;
    if !ids.is_empty() {
        for target in shapes.keys() {
            let hits = database
                .collection::<Document>(target)
                .count_documents(doc! { "_id": { "$in": &ids } })
                .await
                .map_err(|e| SourceError::read(target.clone(), &e))?;
            let by_name = named == Some(target);
            let score = (hits, by_name, target);
            if hits > 0 && best.is_none_or(|b| (b.0, b.1) < (score.0, score.1)) {
                best = Some(score);
            }
        }
    }
    Ok(match (best, named) {
        (Some((hits, _, target)), _) => Some((
            target.clone(),
            format!("{hits} of {} sampled ids are its _ids", ids.len()),
        )),
        (None, Some(target)) => Some((
            target.clone(),
            "by its name; none of its sampled ids was found".to_string(),
        )),
        (None, None) => None,
    })
}

/// The collection a field's name points to: `userId`, `user_id`, `users[]` → `users`.
fn named_collection<'a>(
    path: &str,
    collections: impl Iterator<Item = &'a String>,
) -> Option<&'a String> {
    let last = path
        .trim_end_matches("[]")
        .rsplit(['.', ']'])
        .next()
        .unwrap_or(path);
    let stem = snake_case(last);
    let stem = stem
        .strip_suffix("_ids")
        .or_else(|| stem.strip_suffix("_id"))
        .unwrap_or(&stem)
        .to_string();
    collections.into_iter().find(|c| {
        let name = snake_case(c);
        name == stem || name == format!("{stem}s") || name == format!("{stem}es")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_point_to_collections() {
        let collections = [
            "users".to_string(),
            "products".to_string(),
            "boxes".to_string(),
        ];
        let named = |path| named_collection(path, collections.iter()).map(String::as_str);
        assert_eq!(named("userId"), Some("users"));
        assert_eq!(named("items[].productId"), Some("products"));
        assert_eq!(named("user_id"), Some("users"));
        assert_eq!(named("box_ids[]"), Some("boxes"));
        assert_eq!(named("authorId"), None);
    }
}
