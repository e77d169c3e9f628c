//! Losses on the readout outputs `(T·B, O)`, CPU reference.
//!
//! Both are means over the masked rows: cross-entropy averages −log p over
//! rows, MSE averages the squared error over rows and outputs.

use crate::real::Real;
use crate::tasks::Target;
use ndarray::Array2;

/// Per-row normaliser as the GPU kernel uses it.
pub fn loss_norm(mask: &[f32], outputs: usize, target: &Target) -> f64 {
    let m: f64 = mask.iter().map(|&x| x as f64).sum();
    let m = m.max(1.0);
    match target {
        Target::Classes(_) => 1.0 / m,
        Target::Values(_) => 1.0 / (m * outputs as f64),
        Target::Gaussian(_) => 2.0 / (m * outputs as f64),
    }
}

/// The normaliser a batch uses: its own override, else the mean's.
pub fn batch_loss_norm(batch: &crate::tasks::Batch, outputs: usize) -> f64 {
    batch.loss_norm.unwrap_or_else(|| loss_norm(&batch.mask, outputs, &batch.target))
}

/// Returns (loss, dL/dy) for a batch's targets.
pub fn batch_loss_and_grad<F: Real>(y: &Array2<F>, batch: &crate::tasks::Batch) -> (F, Array2<F>) {
    let norm = batch_loss_norm(batch, y.dim().1);
    class_loss_and_grad(y, &batch.target, &batch.mask, norm)
}

/// (loss, dL/dy) of the rows `y` against `target` and `mask` (which may be
/// a tail of a batch's rows) with the given normaliser.
pub fn class_loss_and_grad<F: Real>(y: &Array2<F>, target: &Target, mask: &[f32], norm: f64) -> (F, Array2<F>) {
    if let Some((loss, dy)) = fast_class_xent(y, target, mask, norm, true) {
        return (loss, dy.expect("asked for the gradient"));
    }
    loss_and_grad_with_norm(y, target, mask, norm)
}

/// Class targets in f32 go through the vectorised, threaded softmax
/// cross-entropy (`cpu_fast::xent`), unless `LONGMEM_CPU_REFERENCE=1`;
/// everything else (f64 gradient checks included) through the loops here.
fn fast_class_xent<F: Real>(y: &Array2<F>, target: &Target, mask: &[f32], norm: f64, want_grad: bool) -> Option<(F, Option<Array2<F>>)> {
    use std::any::Any;
    let Target::Classes(cls) = target else { return None };
    let y32 = (y as &dyn Any).downcast_ref::<Array2<f32>>()?;
    if crate::cpu_fast::reference_forced() || !y32.is_standard_layout() {
        return None;
    }
    let (loss, dy) = crate::cpu_fast::xent::class_xent(y32, cls, mask, norm, want_grad);
    let dy = dy.map(|d| *(Box::new(d) as Box<dyn Any>).downcast::<Array2<F>>().expect("F is f32 here"));
    Some((F::from_f32(loss), dy))
}

/// Returns (loss, dL/dy) with the mean's normaliser.
pub fn loss_and_grad<F: Real>(y: &Array2<F>, target: &Target, mask: &[f32]) -> (F, Array2<F>) {
    loss_and_grad_with_norm(y, target, mask, loss_norm(mask, y.dim().1, target))
}

pub fn loss_and_grad_with_norm<F: Real>(y: &Array2<F>, target: &Target, mask: &[f32], norm: f64) -> (F, Array2<F>) {
    let (rows, outs) = y.dim();
    let norm = F::from_f64(norm);
    let mut dy = Array2::zeros((rows, outs));
    let mut total = F::zero();
    match target {
        Target::Classes(cls) => {
            // one exp per logit: e = exp(y − max) goes into dy, then scales to p
            for r in 0..rows {
                let m = F::from_f32(mask[r]);
                if m == F::zero() {
                    continue;
                }
                let row = y.row(r);
                let mx = row.iter().fold(F::neg_infinity(), |a, &b| a.max(b));
                let mut drow = dy.row_mut(r);
                let mut z = F::zero();
                for (d, &v) in drow.iter_mut().zip(row.iter()) {
                    let e = (v - mx).exp();
                    *d = e;
                    z = z + e;
                }
                let c = cls[r] as usize;
                total = total + m * (mx + z.ln() - row[c]);
                let w = m * norm;
                let scale = w / z;
                drow.mapv_inplace(|e| e * scale);
                drow[c] = drow[c] - w;
            }
        }
        Target::Values(vals) => {
            for r in 0..rows {
                let m = F::from_f32(mask[r]);
                if m == F::zero() {
                    continue;
                }
                for o in 0..outs {
                    let e = y[[r, o]] - F::from_f32(vals[r * outs + o]);
                    total = total + m * e * e;
                    dy[[r, o]] = F::from_f64(2.0) * m * norm * e;
                }
            }
        }
        Target::Gaussian(vals) => {
            let c = outs / 2;
            let half = F::from_f64(0.5);
            for r in 0..rows {
                let m = F::from_f32(mask[r]);
                if m == F::zero() {
                    continue;
                }
                for o in 0..c {
                    let (mu, raw) = (y[[r, o]], y[[r, c + o]]);
                    let sd = gaussian_sd(raw);
                    let e = mu - F::from_f32(vals[r * c + o]);
                    let v = sd * sd;
                    total = total + m * (sd.ln() + half * e * e / v);
                    dy[[r, o]] = m * norm * e / v;
                    let sig = F::one() / (F::one() + (-raw).exp());
                    dy[[r, c + o]] = m * norm * (F::one() / sd - e * e / (v * sd)) * sig;
                }
            }
        }
    }
    (total * norm, dy)
}

/// Lower bound of the Gaussian NLL's standard deviation: keeps the loss
/// finite where a prediction is exact.
pub const GAUSSIAN_SD_MIN: f64 = 1e-3;

/// The standard deviation of a raw output: softplus + a floor.
pub fn gaussian_sd<F: Real>(raw: F) -> F {
    raw.max(F::zero()) + (F::one() + (-raw.abs()).exp()).ln() + F::from_f64(GAUSSIAN_SD_MIN)
}

/// The loss alone (evaluation): one exp per logit and no gradient array.
pub fn batch_loss<F: Real>(y: &Array2<F>, batch: &crate::tasks::Batch) -> F {
    if let Some((loss, _)) = fast_class_xent(y, &batch.target, &batch.mask, batch_loss_norm(batch, y.dim().1), false) {
        return loss;
    }
    let norm = F::from_f64(batch_loss_norm(batch, y.dim().1));
    let Target::Classes(cls) = &batch.target else { return batch_loss_and_grad(y, batch).0 };
    let mut total = F::zero();
    for (r, row) in y.rows().into_iter().enumerate() {
        let m = F::from_f32(batch.mask[r]);
        if m == F::zero() {
            continue;
        }
        let mx = row.iter().fold(F::neg_infinity(), |a, &b| a.max(b));
        let z: F = row.iter().map(|&v| (v - mx).exp()).sum();
        total = total + m * (mx + z.ln() - row[cls[r] as usize]);
    }
    total * norm
}

/// Fraction of metric rows whose argmax is the target class.
pub fn accuracy(y: &[f32], outs: usize, target: &Target, metric_mask: &[f32]) -> Option<f64> {
    let Target::Classes(cls) = target else { return None };
    let (mut hit, mut n) = (0.0, 0.0);
    for (r, &m) in metric_mask.iter().enumerate() {
        if m == 0.0 {
            continue;
        }
        let row = &y[r * outs..(r + 1) * outs];
        let arg = row
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) })
            .0;
        n += 1.0;
        if arg as u32 == cls[r] {
            hit += 1.0;
        }
    }
    (n > 0.0).then(|| hit / n)
}
