//! A mapping whose `type` key chooses the struct that reads the rest of it, read in
//! place.
//!
//! serde's internally tagged enums (`#[serde(tag = "type")]`) buffer the whole mapping
//! before they choose the variant, and what is buffered has lost its place: a mistake
//! inside a source was reported at the source's first line, with a key that stopped at
//! `identity.sources`. Here the entries before `type` (usually none) are held as YAML
//! values, and the chosen struct reads them and then the rest of the live mapping, so
//! an unknown or mistyped key is reported at its own path, line and column.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// A file shape chosen by the `type` key of its mapping.
pub(super) trait Tagged: Sized {
    /// The values `type` may take.
    type Type: for<'de> Deserialize<'de>;
    /// What the mapping is, for a value that is no mapping.
    const EXPECTING: &'static str;
    /// Reads the rest of the mapping (all but `type`) as the shape of `kind`.
    fn read<'de, D: Deserializer<'de>>(kind: Self::Type, rest: D) -> Result<Self, D::Error>;
}

/// Reads a [`Tagged`] mapping.
pub(super) fn deserialize<'de, T: Tagged, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_map(TaggedVisitor(PhantomData))
}

struct TaggedVisitor<T>(PhantomData<T>);

impl<'de, T: Tagged> Visitor<'de> for TaggedVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let mut held = Vec::new();
        let kind = loop {
            match map.next_key::<String>()? {
                None => return Err(de::Error::missing_field("type")),
                Some(key) if key == "type" => break map.next_value::<T::Type>()?,
                Some(key) => {
                    let value = map.next_value::<yaml_serde::Value>()?;
                    held.push((key, value));
                }
            }
        };
        let rest = Rest { held: held.into_iter(), pending: None, live: map };
        T::read(kind, MapAccessDeserializer::new(rest))
    }
}

/// The entries held before `type`, then the live mapping.
struct Rest<A> {
    held: std::vec::IntoIter<(String, yaml_serde::Value)>,
    pending: Option<yaml_serde::Value>,
    live: A,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Rest<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        match self.held.next() {
            Some((key, value)) => {
                self.pending = Some(value);
                seed.deserialize(IntoDeserializer::<A::Error>::into_deserializer(key)).map(Some)
            }
            None => self.live.next_key_seed(seed),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        match self.pending.take() {
            Some(value) => seed.deserialize(value).map_err(de::Error::custom),
            None => self.live.next_value_seed(seed),
        }
    }
}
