//! Multichannel time series from CSV (the ETT files: `date,HUFL,...,OT`),
//! the standard chronological splits, and standardisation with the training
//! split's statistics.

use anyhow::{bail, ensure, Context, Result};
use ndarray::{s, Array2, ArrayView2};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Rows of the ETT-hour splits: 12, 4 and 4 months of 30 days.
pub const ETTH_SPLITS: [usize; 3] = [12 * 30 * 24, 4 * 30 * 24, 4 * 30 * 24];

/// A table of values: one row per time step, one column per channel.
#[derive(Clone, Debug)]
pub struct Series {
    pub columns: Vec<String>,
    pub values: Array2<f32>,
}

impl Series {
    pub fn len(&self) -> usize {
        self.values.dim().0
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn channels(&self) -> usize {
        self.values.dim().1
    }
}

/// Read a CSV whose first column is a timestamp (kept out) and whose other
/// columns are numbers; every value must be finite.
pub fn load(path: &Path) -> Result<Series> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&text).with_context(|| format!("{} is not a usable series", path.display()))
}

pub fn parse(text: &str) -> Result<Series> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().context("the file is empty")?;
    let columns: Vec<String> = header.split(',').skip(1).map(|c| c.trim().to_string()).collect();
    ensure!(!columns.is_empty(), "the header '{header}' names no value columns after the timestamp");
    let c = columns.len();
    let mut vals = Vec::new();
    for (i, line) in lines.enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != c + 1 {
            bail!("line {} has {} fields, the header {}", i + 2, fields.len(), c + 1);
        }
        for (j, f) in fields[1..].iter().enumerate() {
            let v: f32 = f.trim().parse().with_context(|| format!("line {}, column {}: '{f}' is not a number", i + 2, columns[j]))?;
            ensure!(v.is_finite(), "line {}, column {}: {v} is not finite", i + 2, columns[j]);
            vals.push(v);
        }
    }
    let n = vals.len() / c;
    ensure!(n > 0, "the file has a header but no rows");
    Ok(Series { columns, values: Array2::from_shape_vec((n, c), vals).expect("n·c values") })
}

/// Row ranges of the train / validation / test splits: the ETT-hour months
/// when the series is long enough, else 60/20/20 of its rows.
pub fn split_ranges(n: usize) -> [std::ops::Range<usize>; 3] {
    let [a, b, c] = if n >= ETTH_SPLITS.iter().sum() { ETTH_SPLITS } else { [n * 6 / 10, n * 2 / 10, n - n * 6 / 10 - n * 2 / 10] };
    [0..a, a..a + b, a + b..a + b + c]
}

/// Per-channel mean and standard deviation of the training split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Standardiser {
    pub columns: Vec<String>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Standardiser {
    pub fn fit(columns: &[String], train: ArrayView2<f32>) -> Result<Self> {
        let n = train.dim().0;
        ensure!(n >= 2, "the training split has {n} rows: too few to standardise");
        let mut mean = Vec::new();
        let mut std = Vec::new();
        for col in train.columns() {
            let m = col.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
            let var = col.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n as f64;
            // a constant channel stays as it is, centred
            mean.push(m);
            std.push(if var > 0.0 { var.sqrt() } else { 1.0 });
        }
        Ok(Standardiser { columns: columns.to_vec(), mean, std })
    }

    pub fn apply(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut y = x.to_owned();
        for (j, mut col) in y.columns_mut().into_iter().enumerate() {
            col.mapv_inplace(|v| ((v as f64 - self.mean[j]) / self.std[j]) as f32);
        }
        y
    }

    pub fn invert(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut y = x.to_owned();
        for (j, mut col) in y.columns_mut().into_iter().enumerate() {
            col.mapv_inplace(|v| (v as f64 * self.std[j] + self.mean[j]) as f32);
        }
        y
    }
}

/// The three splits, standardised with the training split's statistics.
/// Validation and test keep the `lookback` rows before them, so their first
/// window's history comes from the split before (the usual convention).
pub struct Splits {
    pub train: Array2<f32>,
    pub valid: Array2<f32>,
    pub test: Array2<f32>,
    pub scaler: Standardiser,
}

pub fn splits(series: &Series, lookback: usize) -> Result<Splits> {
    let [tr, va, te] = split_ranges(series.len());
    ensure!(tr.len() > lookback, "the training split has {} rows, not more than the look-back {lookback}", tr.len());
    let scaler = Standardiser::fit(&series.columns, series.values.slice(s![tr.clone(), ..]))?;
    let part = |r: std::ops::Range<usize>| scaler.apply(series.values.slice(s![r.start.saturating_sub(lookback)..r.end, ..]));
    Ok(Splits { train: part(tr), valid: part(va), test: part(te), scaler })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let s = parse("date,a,b\n2016-07-01 00:00:00,1,2\n2016-07-01 01:00:00,3,4.5\n").unwrap();
        assert_eq!(s.columns, vec!["a", "b"]);
        assert_eq!(s.values, ndarray::array![[1.0, 2.0], [3.0, 4.5]]);
        assert!(format!("{:#}", parse("date,a\nx,nan\n").unwrap_err()).contains("not finite"));
        assert!(format!("{:#}", parse("date,a\nx,1,2\n").unwrap_err()).contains("fields"));
        assert!(format!("{:#}", parse("date,a\nx,abc\n").unwrap_err()).contains("not a number"));
        assert!(parse("").is_err());
    }

    #[test]
    fn splits_follow_the_months_and_standardise_with_train() {
        assert_eq!(split_ranges(17420), [0..8640, 8640..11520, 11520..14400]);
        assert_eq!(split_ranges(100), [0..60, 60..80, 80..100]);
        let n = 100;
        let values = Array2::from_shape_fn((n, 2), |(i, j)| (i * (j + 1)) as f32);
        let series = Series { columns: vec!["a".into(), "b".into()], values };
        let sp = splits(&series, 5).unwrap();
        assert_eq!(sp.train.dim(), (60, 2));
        assert_eq!(sp.valid.dim(), (25, 2));
        assert_eq!(sp.test.dim(), (25, 2));
        // train has mean 0 and std 1 per channel; the scaler inverts
        for col in sp.train.columns() {
            let m = col.iter().map(|&v| v as f64).sum::<f64>() / 60.0;
            let v = col.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / 60.0;
            assert!(m.abs() < 1e-5 && (v - 1.0).abs() < 1e-5, "mean {m} var {v}");
        }
        let back = sp.scaler.invert(sp.test.view());
        assert!((back[[0, 1]] - 150.0).abs() < 1e-3, "{}", back[[0, 1]]);
    }
}
