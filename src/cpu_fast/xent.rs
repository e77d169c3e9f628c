//! Softmax cross-entropy over class logits `(rows, classes)` in f32, the
//! language models' loss. With a 10,000-word vocabulary this is one exp per
//! logit, and in the reference loop (libm's `expf`, one row after another
//! on one core) it took about a third of a CPU training step. Here each
//! row runs in passes that vectorise (lane-wise max, then `exp` written
//! straight into dL/dy, a 16-lane sum (`lane_sum_of`), a scale) and the
//! rows are split over threads. Sums are kept in f64 per row and over rows.
//!
//! Held to the f64 reference (`train::loss`) in `tests/cpu_fast.rs`.

use super::{exp, lane_sum_of, row_chunks};
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};

const LANES: usize = 16;

#[inline(always)]
fn row_max(row: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for (m, &v) in lanes.iter_mut().zip(c) {
            *m = m.max(v);
        }
    }
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    lanes.iter().fold(tail, |a, &b| a.max(b))
}

/// Rows `y` (with their classes and mask) into the summed −log p and,
/// when `dy` is given, dL/dy = mask · norm · (p − onehot) written into it.
fn rows_xent(y: ArrayView2<f32>, cls: &[u32], mask: &[f32], norm: f64, dy: Option<ArrayViewMut2<f32>>) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        match super::kernel::level() {
            // SAFETY: level() detected the features
            2 => return unsafe { rows_xent_avx512(y, cls, mask, norm, dy) },
            1 => return unsafe { rows_xent_avx2(y, cls, mask, norm, dy) },
            _ => {}
        }
    }
    rows_xent_body(y, cls, mask, norm, dy)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn rows_xent_avx512(y: ArrayView2<f32>, cls: &[u32], mask: &[f32], norm: f64, dy: Option<ArrayViewMut2<f32>>) -> f64 {
    rows_xent_body(y, cls, mask, norm, dy)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_xent_avx2(y: ArrayView2<f32>, cls: &[u32], mask: &[f32], norm: f64, dy: Option<ArrayViewMut2<f32>>) -> f64 {
    rows_xent_body(y, cls, mask, norm, dy)
}

#[inline(always)]
fn rows_xent_body(y: ArrayView2<f32>, cls: &[u32], mask: &[f32], norm: f64, mut dy: Option<ArrayViewMut2<f32>>) -> f64 {
    let mut total = 0f64;
    for r in 0..y.nrows() {
        let m = mask[r];
        if m == 0.0 {
            continue;
        }
        let row = y.row(r);
        let row = row.as_slice().expect("logit rows are contiguous");
        let c = cls[r] as usize;
        let mx = row_max(row);
        match dy.as_mut() {
            Some(dy) => {
                let mut d = dy.row_mut(r);
                let d = d.as_slice_mut().expect("gradient rows are contiguous");
                for (e, &v) in d.iter_mut().zip(row) {
                    *e = exp(v - mx);
                }
                let z = lane_sum_of(d, |e| e);
                total += m as f64 * (mx as f64 + z.ln() - row[c] as f64);
                let w = m as f64 * norm;
                let scale = (w / z) as f32;
                d.iter_mut().for_each(|e| *e *= scale);
                d[c] -= w as f32;
            }
            None => {
                let z = lane_sum_of(row, |v| exp(v - mx));
                total += m as f64 * (mx as f64 + z.ln() - row[c] as f64);
            }
        }
    }
    total
}

/// The mean cross-entropy of `y` (`norm` times the masked sum of −log p)
/// and, with `want_grad`, dL/dy. `y` must be in standard layout.
pub fn class_xent(y: &Array2<f32>, cls: &[u32], mask: &[f32], norm: f64, want_grad: bool) -> (f32, Option<Array2<f32>>) {
    let rows = y.nrows();
    assert!(cls.len() >= rows && mask.len() >= rows, "class_xent: {rows} rows, {} classes, {} mask entries", cls.len(), mask.len());
    let mut dy = want_grad.then(|| Array2::<f32>::zeros(y.dim()));
    let chunks = row_chunks(rows);
    let total = if chunks.len() <= 1 {
        rows_xent(y.view(), cls, mask, norm, dy.as_mut().map(|d| d.view_mut()))
    } else {
        let per = chunks[0].1 - chunks[0].0;
        let y_parts = y.axis_chunks_iter(Axis(0), per);
        let mut dy_parts: Vec<Option<ArrayViewMut2<f32>>> = match dy.as_mut() {
            Some(d) => d.axis_chunks_iter_mut(Axis(0), per).map(Some).collect(),
            None => (0..y_parts.len()).map(|_| None).collect(),
        };
        std::thread::scope(|sc| {
            let hs: Vec<_> = y_parts
                .zip(dy_parts.drain(..))
                .enumerate()
                .map(|(i, (yp, dp))| {
                    let a = i * per;
                    let b = a + yp.nrows();
                    sc.spawn(move || rows_xent(yp, &cls[a..b], &mask[a..b], norm, dp))
                })
                .collect();
            hs.into_iter().map(|h| h.join().expect("cross-entropy worker panicked")).sum::<f64>()
        })
    };
    ((total * norm) as f32, dy)
}
