//! The names of unit-variant enums (`Verdict`, `Metric`, `StopReason`, `Expect`, …) as their
//! serde derive spells them in `results.json` and scenario files, so that reports never restate
//! them in a hand-written `match` that could drift from `rename_all`.
//!
//! [`of`] serializes the value into [`VariantName`], a serializer that accepts one thing: a
//! unit variant, whose `&'static str` name serde hands over as is (no allocation).

use serde::Serialize;
use serde::ser::{self, Impossible};

/// The serde name of a unit variant, e.g. `"gc_objects"` for `Metric::GcObjects`.
///
/// # Panics
/// When `value` does not serialize as a unit variant: a bug in the caller, caught by the tests
/// of each type that uses it.
pub fn of<T: Serialize>(value: &T) -> &'static str {
    value
        .serialize(VariantName)
        .expect("a unit variant of a serde enum")
}

/// A serializer that only accepts unit variants and returns their name.
struct VariantName;

/// What [`VariantName`] says about anything that is not a unit variant.
#[derive(Debug)]
struct NotAUnitVariant;

impl std::fmt::Display for NotAUnitVariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a unit variant")
    }
}

impl std::error::Error for NotAUnitVariant {}

impl ser::Error for NotAUnitVariant {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        NotAUnitVariant
    }
}

/// Every `serialize_*` method but `serialize_unit_variant` refuses.
macro_rules! refuse {
    ($($method:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $method(self, $(_: $arg),*) -> Result<Self::Ok, Self::Error> {
            Err(NotAUnitVariant)
        })*
    };
}

impl ser::Serializer for VariantName {
    type Ok = &'static str;
    type Error = NotAUnitVariant;
    type SerializeSeq = Impossible<&'static str, NotAUnitVariant>;
    type SerializeTuple = Impossible<&'static str, NotAUnitVariant>;
    type SerializeTupleStruct = Impossible<&'static str, NotAUnitVariant>;
    type SerializeTupleVariant = Impossible<&'static str, NotAUnitVariant>;
    type SerializeMap = Impossible<&'static str, NotAUnitVariant>;
    type SerializeStruct = Impossible<&'static str, NotAUnitVariant>;
    type SerializeStructVariant = Impossible<&'static str, NotAUnitVariant>;

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<&'static str, NotAUnitVariant> {
        Ok(variant)
    }

    refuse! {
        serialize_bool(bool), serialize_i8(i8), serialize_i16(i16), serialize_i32(i32),
        serialize_i64(i64), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32),
        serialize_u64(u64), serialize_f32(f32), serialize_f64(f64), serialize_char(char),
        serialize_str(&str), serialize_bytes(&[u8]), serialize_none(), serialize_unit(),
        serialize_unit_struct(&'static str),
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<&'static str, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<&'static str, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<&'static str, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }

    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }
}

#[cfg(test)]
mod tests {
    use crate::metric::Metric;
    use crate::scenario::Expect;
    use crate::verdict::{StopReason, Verdict};

    /// Every name is the one results.json has, the same as serde_json writes.
    fn same_as_json<T: serde::Serialize>(value: T) {
        let json = serde_json::to_value(&value).unwrap();
        assert_eq!(Some(super::of(&value)), json.as_str());
    }

    #[test]
    fn names_are_the_serde_names() {
        assert_eq!(super::of(&Metric::GcObjects), "gc_objects");
        assert_eq!(super::of(&StopReason::MaxIterations), "max_iterations");
        Metric::ALL.into_iter().for_each(same_as_json);
        [
            Verdict::Pass,
            Verdict::Leak,
            Verdict::Inconclusive,
            Verdict::Error,
            Verdict::Skipped,
        ]
        .into_iter()
        .for_each(same_as_json);
        [
            StopReason::Decided,
            StopReason::MaxIterations,
            StopReason::Incomplete,
        ]
        .into_iter()
        .for_each(same_as_json);
        [Expect::Pass, Expect::Leak]
            .into_iter()
            .for_each(same_as_json);
    }

    #[test]
    #[should_panic(expected = "a unit variant")]
    fn anything_else_is_a_bug() {
        super::of(&Some(1));
    }
}
