//! PostgreSQL names for things MongoDB names more freely.
//!
//! PostgreSQL keeps 63 bytes of an identifier and silently drops the rest, so two long
//! field names sharing their first 63 bytes would become one column; and names that
//! differ only in case (`createdAt`, `createdat`) are one column to anyone writing
//! unquoted SQL. Generated names (a default table, a child table, a column named after
//! its path) are therefore checked against the names already taken in their table:
//!
//! - a name of at most 63 bytes that no taken name equals case-insensitively is kept;
//! - otherwise it becomes its first 54 bytes (cut at a character boundary), `_`, and
//!   the first 8 hex digits of the BLAKE3 hash of the whole name: the same input always
//!   gives the same name, and different inputs practically never share one.

use std::collections::HashSet;

pub use common::naming::quote;

/// Quotes a table name for SQL: `shop.orders` is the table `orders` in the schema
/// `shop` (`"shop"."orders"`); a name without a dot is looked up on the search path.
/// A mapping's names are checked so that a dot always means a schema.
pub fn quote_table(table: &str) -> String {
    match split_table(table) {
        (Some(schema), name) => format!("{}.{}", quote(schema), quote(name)),
        (None, name) => quote(name),
    }
}

/// A table name's schema, if it names one, and its name within it.
pub fn split_table(table: &str) -> (Option<&str>, &str) {
    match table.split_once('.') {
        Some((schema, name)) => (Some(schema), name),
        None => (None, table),
    }
}

/// `createdAt`, `CreatedAt`, `created-at` and `created at` as `created_at`: lower
/// case, words joined by `_`. A capital starts a word unless it follows another
/// capital that a lowercase letter does not follow (`userID` → `user_id`,
/// `HTTPServer` → `http_server`); characters other than letters, digits and `_`
/// become `_`, never two in a row.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let previous = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1);
            let starts_word = match previous {
                Some(p) if p.is_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_uppercase() => next.is_some_and(|n| n.is_lowercase()),
                _ => false,
            };
            if starts_word && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else if c.is_alphanumeric() || c == '_' {
            out.push(c);
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    if out.is_empty() {
        name.to_string()
    } else {
        out
    }
}

/// PostgreSQL's identifier limit (`NAMEDATALEN - 1`).
pub const MAX_IDENTIFIER_BYTES: usize = 63;
const KEPT_BYTES: usize = 54;

/// The names a table already uses, compared case-insensitively.
#[derive(Debug, Default, Clone)]
pub struct Taken(HashSet<String>);

impl Taken {
    /// Records a name given explicitly (by the mapping), so generated ones avoid it;
    /// false when it is already taken.
    pub fn claim(&mut self, name: &str) -> bool {
        self.0.insert(name.to_lowercase())
    }

    /// A deterministic name for `wanted` that fits and collides with no taken name.
    pub fn generate(&mut self, wanted: &str) -> String {
        let mut name = wanted.to_string();
        if name.len() > MAX_IDENTIFIER_BYTES || self.0.contains(&name.to_lowercase()) {
            name = hashed(wanted);
        }
        // A hashed name colliding too is astronomically unlikely; rehash until free.
        let mut salt = 0;
        while self.0.contains(&name.to_lowercase()) {
            salt += 1;
            name = hashed(&format!("{wanted}#{salt}"));
        }
        self.0.insert(name.to_lowercase());
        name
    }
}

/// The first 54 bytes of `wanted`, `_`, and 8 hex digits of its hash.
pub fn hashed(wanted: &str) -> String {
    let mut cut = KEPT_BYTES.min(wanted.len());
    while !wanted.is_char_boundary(cut) {
        cut -= 1;
    }
    let hash = blake3::hash(wanted.as_bytes());
    format!("{}_{}", &wanted[..cut], &hash.to_hex()[..8])
}

/// A name that fits on its own (a table name), with no neighbours to avoid.
pub fn fitted(wanted: &str) -> String {
    if wanted.len() > MAX_IDENTIFIER_BYTES {
        hashed(wanted)
    } else {
        wanted.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_always_quoted() {
        assert_eq!(quote("users"), "\"users\"");
        assert_eq!(quote("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn table_names_with_a_dot_name_a_schema() {
        assert_eq!(quote_table("shop.orders"), "\"shop\".\"orders\"");
        assert_eq!(quote_table("orders"), "\"orders\"");
        assert_eq!(split_table("shop.orders"), (Some("shop"), "orders"));
    }

    #[test]
    fn snake_case_splits_words_at_capitals() {
        for (from, to) in [
            ("createdAt", "created_at"),
            ("CreatedAt", "created_at"),
            ("userID", "user_id"),
            ("HTTPServer", "http_server"),
            ("address_city", "address_city"),
            ("address.zipCode", "address_zip_code"),
            ("order items", "order_items"),
            ("likedBy", "liked_by"),
            ("v2Name", "v2_name"),
            ("_id", "_id"),
            ("Straße", "straße"),
        ] {
            assert_eq!(snake_case(from), to, "{from}");
        }
    }

    #[test]
    fn short_distinct_names_are_kept() {
        let mut taken = Taken::default();
        assert_eq!(taken.generate("name"), "name");
        assert_eq!(taken.generate("city"), "city");
    }

    #[test]
    fn long_names_are_cut_and_hashed_deterministically() {
        let long_a = format!("{}a", "k".repeat(70));
        let long_b = format!("{}b", "k".repeat(70));
        let a = Taken::default().generate(&long_a);
        let b = Taken::default().generate(&long_b);
        assert!(a.len() <= MAX_IDENTIFIER_BYTES && b.len() <= MAX_IDENTIFIER_BYTES);
        assert_ne!(a, b, "same first 63 bytes, different names");
        assert_eq!(a, Taken::default().generate(&long_a), "deterministic");
        // Multi-byte characters are never split.
        let wide = "é".repeat(40);
        assert!(Taken::default()
            .generate(&wide)
            .starts_with(&"é".repeat(27)));
    }

    #[test]
    fn case_folded_collisions_get_distinct_names() {
        let mut taken = Taken::default();
        assert_eq!(taken.generate("createdAt"), "createdAt");
        let second = taken.generate("createdat");
        assert_ne!(second.to_lowercase(), "createdat");
        assert!(second.starts_with("createdat_"));
        assert!(!taken.claim("CREATEDAT"));
    }
}
