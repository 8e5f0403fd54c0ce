//! `transform = { kind = "hash", key = "pii" }` or a list of them: one step or many,
//! with serde's own error for a wrong step (an untagged enum would only say that
//! nothing matched).

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::Transform;

/// Deserializes one [`Transform`] or a list of them.
///
/// # Errors
/// The format's error for a value that is neither.
pub fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Transform>, D::Error> {
    struct Steps;

    impl<'de> Visitor<'de> for Steps {
        type Value = Vec<Transform>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a transform ({ kind = \"...\" }) or a list of them")
        }

        fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
            Transform::deserialize(de::value::MapAccessDeserializer::new(map)).map(|t| vec![t])
        }

        fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
            let mut steps = Vec::new();
            while let Some(step) = seq.next_element()? {
                steps.push(step);
            }
            Ok(steps)
        }
    }

    deserializer.deserialize_any(Steps)
}
