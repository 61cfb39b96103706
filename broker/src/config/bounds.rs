//! A key's declared range (`#[range = ...]` in `table.rs`), checked the
//! same way whether the value came from the file or a flag, and the error
//! that names the key and the range.

use std::fmt::Display;
use std::ops::{Bound, RangeBounds};

/// A setting whose value can be held to a range: a number, or an optional
/// number (checked when set).
pub trait Ranged {
    type Item: PartialOrd + Display;
    fn ranged(&self) -> Option<&Self::Item>;
}

macro_rules! ranged {
    ($($t:ty),*) => {$(
        impl Ranged for $t {
            type Item = $t;
            fn ranged(&self) -> Option<&$t> {
                Some(self)
            }
        }
    )*};
}
ranged!(i32, i64, u32, u64, usize, f64);

impl<T: Ranged<Item = T> + PartialOrd + Display> Ranged for Option<T> {
    type Item = T;
    fn ranged(&self) -> Option<&T> {
        self.as_ref()
    }
}

/// "between 1 and 4096", "at least 1", "at most 100000".
pub fn describe<T: Display, R: RangeBounds<T>>(range: &R) -> String {
    let shown = |b: Bound<&T>| match b {
        Bound::Included(v) => Some(v.to_string()),
        Bound::Excluded(_) => unreachable!("ranges in table.rs are inclusive"),
        Bound::Unbounded => None,
    };
    match (shown(range.start_bound()), shown(range.end_bound())) {
        (Some(min), Some(max)) => format!("between {min} and {max}"),
        (Some(min), None) => format!("at least {min}"),
        (None, Some(max)) => format!("at most {max}"),
        (None, None) => "any value".into(),
    }
}

/// Refuse a value outside its range: "`key = v: must be between a and b`".
pub fn check<V: Ranged, R: RangeBounds<V::Item>>(key: &str, v: &V, range: R) -> Result<(), String> {
    match v.ranged() {
        Some(x) if !range.contains(x) => Err(format!("{key} = {x}: must be {}", describe(&range))),
        _ => Ok(()),
    }
}

/// A value that is not of the key's type (text for a number, a number past
/// the type's range): the key, the value, why, and the range if declared.
pub fn type_error(
    key: &str,
    shown: &str,
    why: impl Display,
    bound: Option<fn() -> String>,
) -> String {
    match bound {
        Some(bound) => format!("{key} = {shown}: {why} (must be {})", bound()),
        None => format!("{key} = {shown}: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_read_as_words() {
        assert_eq!(describe(&(1..=4096)), "between 1 and 4096");
        assert_eq!(describe(&(1..)), "at least 1");
        assert_eq!(describe(&(..=100_000)), "at most 100000");
        assert_eq!(describe(&(0.0..=50.0)), "between 0 and 50");
        assert!(check("k", &5u32, 1..=4).is_err());
        assert!(check("k", &Some(0usize), 1..=4).is_err());
        assert!(check("k", &None::<usize>, 1..=4).is_ok());
        assert_eq!(
            check("k", &-2i64, -1..).unwrap_err(),
            "k = -2: must be at least -1"
        );
    }
}
