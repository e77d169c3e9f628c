//! CPU reference of the Lyapunov spectrum, in f64 with Householder QR.

use super::{Drive, LyapunovConfig, Spectrum, CHUNK};
use crate::cpu::qr_f64;
use crate::models::Model;
use crate::real::cast_vec;
use anyhow::Result;
use ndarray::{s, Array2, Axis};

/// Lyapunov spectrum of `model` with parameters `params` along the driven
/// trajectories. With `k == N` it also returns the time average of
/// log|det J_t|, computed from the same steps (the sum rule's other side).
pub fn spectrum(model: &Model, params: &[f32], drive: &Drive, cfg: &LyapunovConfig) -> Result<Spectrum> {
    super::check_model(model, cfg)?;
    if cfg.input == super::LyapInput::Task && drive.task.is_none() {
        anyhow::bail!("--input task needs a task to draw inputs from");
    }
    let p: Vec<f64> = cast_vec(params);
    let n = model.state_width();
    let b = cfg.trajectories;
    let mut h: Array2<f64> = drive.h0(n).mapv(|v| v as f64);
    let mut q = drive.q0(n);
    let mut sums = vec![vec![0.0; cfg.k]; b];
    let mut running = Vec::new();
    // the sum rule's other side: for the Elman family J_t = D_t W, so
    // log|det J_t| = log|det W| + log|det D_t|; other families build J_t
    let elman = matches!(model, Model::Rnn(_));
    let log_det_w = (cfg.k == n).then(|| if elman { log_abs_det(model, &p, n) } else { 0.0 });
    let mut log_det_sum = 0.0;
    let total = cfg.total_steps();
    let start_tangent = cfg.transient;
    let start_accum = cfg.transient + cfg.tangent_transient;
    let mut t = 0;
    let mut c = 0;
    while t < total {
        let len = CHUNK.min(total - t);
        let x = drive.chunk(c, len).mapv(|v| v as f64);
        for s_ in 0..len {
            let xt = x.slice(s![s_..s_ + 1, .., ..]);
            let states = model.forward(&p, xt, h.view());
            let prev = std::mem::replace(&mut h, states.index_axis(Axis(0), 1).to_owned());
            if t >= start_tangent {
                let pre = model.project(&p, xt);
                for (bi, qb) in q.iter_mut().enumerate() {
                    let ht = h.row(bi).to_vec();
                    let at = crate::models::StepAt {
                        pre: pre.row(bi).to_slice().expect("contiguous"),
                        prev: prev.row(bi).to_slice().expect("contiguous"),
                        next: &ht,
                    };
                    *qb = model.tangent(&p, &at, qb.view());
                    if t >= start_accum {
                        if let Some(ld) = log_det_w {
                            log_det_sum += if elman { ld + log_det_diag(model, &ht) } else { log_abs_det_jacobian(model, &p, &at, n) };
                        }
                    }
                }
                let since = t + 1 - start_tangent;
                if since.is_multiple_of(cfg.reortho) {
                    for (bi, qb) in q.iter_mut().enumerate() {
                        let (qn, r) = qr_f64(qb.as_standard_layout().as_slice().expect("contiguous"), n, cfg.k);
                        *qb = Array2::from_shape_vec((n, cfg.k), qn).expect("shape");
                        if t >= start_accum {
                            for i in 0..cfg.k {
                                sums[bi][i] += r[i * cfg.k + i].abs().ln();
                            }
                        }
                    }
                    if t >= start_accum {
                        let done = t + 1 - start_accum;
                        let l1 = sums.iter().map(|s| s.iter().cloned().fold(f64::NEG_INFINITY, f64::max)).sum::<f64>() / (b as f64 * done as f64);
                        running.push((done, l1));
                    }
                }
            }
            t += 1;
        }
        c += 1;
    }
    let mean_log_det = log_det_w.map(|_| log_det_sum / (b as f64 * cfg.steps as f64));
    Ok(Spectrum::from_sums(&sums, cfg.steps, thin(running), mean_log_det))
}

/// Keep at most ~200 points of a running estimate.
fn thin(v: Vec<(usize, f64)>) -> Vec<(usize, f64)> {
    let every = v.len().div_ceil(200).max(1);
    let last = v.last().cloned();
    let mut out: Vec<_> = v.into_iter().step_by(every).collect();
    if let Some(l) = last {
        if out.last() != Some(&l) {
            out.push(l);
        }
    }
    out
}

/// log|det W| of the recurrent matrix (J_t = D_t W for the Elman family).
fn log_abs_det(model: &Model, p: &[f64], n: usize) -> f64 {
    let w = &p[model.layout().get("w_rec").expect("rnn family").range()];
    let m = nalgebra::DMatrix::from_row_slice(n, n, w);
    m.lu().determinant().abs().ln()
}

/// log|det J_t| from the tangent map applied to the identity.
fn log_abs_det_jacobian(model: &Model, p: &[f64], at: &crate::models::StepAt<f64>, n: usize) -> f64 {
    let j = model.tangent(p, at, Array2::eye(n).view());
    let m = nalgebra::DMatrix::from_row_slice(n, n, j.as_standard_layout().as_slice().expect("contiguous"));
    m.lu().determinant().abs().ln()
}

/// log|det D_t| with D_t = diag(act'(h_t)).
fn log_det_diag(model: &Model, h: &[f64]) -> f64 {
    match model.kind() {
        crate::models::ModelKind::Rnn => h.iter().map(|v| (1.0 - v * v).abs().ln()).sum(),
        crate::models::ModelKind::Srn => h.iter().map(|v| (v * (1.0 - v)).abs().ln()).sum(),
        _ => 0.0,
    }
}

