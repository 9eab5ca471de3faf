//! Checks on vectors and queries from callers, and the unit scaling of cosine.

use std::borrow::Cow;

use super::metric::{Metric, normalize};
use crate::error::{Error, Result};

/// The largest dimension accepted; embedding models produce a few thousand at most.
pub const MAX_DIMENSION: usize = 65_536;

pub(crate) fn check_dimension(dimension: usize) -> Result<()> {
    if (1..=MAX_DIMENSION).contains(&dimension) {
        Ok(())
    } else {
        Err(Error::invalid(
            "dimension",
            format!("{dimension} is outside 1..={MAX_DIMENSION}"),
        ))
    }
}

/// Checks one vector and returns it as the index stores or searches it: scaled to unit
/// length under [`Metric::Cosine`], unchanged otherwise.
pub(crate) fn prepare<'a>(
    metric: Metric,
    dimension: usize,
    name: &str,
    vector: &'a [f32],
) -> Result<Cow<'a, [f32]>> {
    if vector.len() != dimension {
        return Err(Error::invalid(
            name,
            format!(
                "has {} components, but the index dimension is {dimension}",
                vector.len()
            ),
        ));
    }
    check_finite(name, vector)?;
    if metric != Metric::Cosine {
        return Ok(Cow::Borrowed(vector));
    }
    let mut unit = vector.to_vec();
    scale_to_unit(name, &mut unit)?;
    Ok(Cow::Owned(unit))
}

/// Checks row-major `rows` of `dimension` components each, as [`prepare`] checks one,
/// naming the failing row as `name[row]`.
pub(crate) fn prepare_rows<'a>(
    metric: Metric,
    dimension: usize,
    name: &str,
    rows: &'a [f32],
) -> Result<Cow<'a, [f32]>> {
    if !rows.len().is_multiple_of(dimension) {
        return Err(Error::invalid(
            name,
            format!(
                "has {} values, which is not a whole number of rows of the index \
                 dimension {dimension}",
                rows.len()
            ),
        ));
    }
    for (row, vector) in rows.chunks_exact(dimension).enumerate() {
        check_finite(&format!("{name}[{row}]"), vector)?;
    }
    if metric != Metric::Cosine {
        return Ok(Cow::Borrowed(rows));
    }
    let mut units = rows.to_vec();
    for (row, vector) in units.chunks_exact_mut(dimension).enumerate() {
        scale_to_unit(&format!("{name}[{row}]"), vector)?;
    }
    Ok(Cow::Owned(units))
}

fn check_finite(name: &str, vector: &[f32]) -> Result<()> {
    match vector.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(position) => Err(Error::invalid(
            name,
            format!(
                "component {position} is {}; every component must be finite",
                vector[position]
            ),
        )),
    }
}

fn scale_to_unit(name: &str, vector: &mut [f32]) -> Result<()> {
    let norm = normalize(vector);
    if norm > 0.0 && norm.is_finite() {
        Ok(())
    } else if norm == 0.0 {
        Err(Error::invalid(
            name,
            "has zero length, so it has no direction for the cosine metric",
        ))
    } else {
        Err(Error::invalid(
            name,
            "is too long to scale to unit length in f32 (its squared length overflows)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_values() {
        let err = prepare(Metric::L2, 4, "vector", &[1.0; 3])
            .unwrap_err()
            .to_string();
        assert!(err.contains("has 3 components"), "{err}");
        assert!(err.contains("dimension is 4"), "{err}");

        let err = prepare(Metric::L2, 3, "query", &[1.0, f32::NAN, 0.0])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("invalid query"), "{err}");
        assert!(err.contains("component 1 is NaN"), "{err}");

        let err = prepare(Metric::Cosine, 2, "vector", &[0.0, 0.0])
            .unwrap_err()
            .to_string();
        assert!(err.contains("zero length"), "{err}");

        let rows = [1.0, 2.0, f32::INFINITY, 0.0];
        let err = prepare_rows(Metric::L2, 2, "vectors", &rows)
            .unwrap_err()
            .to_string();
        assert!(err.contains("vectors[1]"), "{err}");
        assert!(err.contains("component 0 is inf"), "{err}");

        let err = prepare_rows(Metric::L2, 2, "vectors", &[1.0; 3])
            .unwrap_err()
            .to_string();
        assert!(err.contains("3 values"), "{err}");

        let err = check_dimension(0).unwrap_err().to_string();
        assert!(err.contains("dimension"), "{err}");
    }

    #[test]
    fn cosine_scales_and_others_borrow() {
        let scaled = prepare(Metric::Cosine, 2, "vector", &[3.0, 4.0]).unwrap();
        assert_eq!(&*scaled, &[0.6, 0.8]);
        assert!(matches!(
            prepare(Metric::InnerProduct, 2, "v", &[3.0, 4.0]).unwrap(),
            Cow::Borrowed(_)
        ));
        let huge = prepare(Metric::Cosine, 2, "vector", &[f32::MAX, f32::MAX]).unwrap_err();
        assert!(huge.to_string().contains("overflows"), "{huge}");
    }
}
