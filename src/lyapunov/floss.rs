//! Gradient flossing (Engelken, NeurIPS 2023): a loss on the finite-time
//! Lyapunov exponents of the tangent dynamics that pushes them toward 0, and
//! its exact gradient with respect to every parameter.
//!
//! Forward, per trajectory b: the states run `transient` = T0 steps alone,
//! then for t = 1..=Tp
//!
//! ```text
//! Q̃_t = J_t Q_{t-1},   (Q_t, R_t) = qr(Q̃_t)   (positive diagonal),
//! λ_{b,i} = (1/Tp) Σ_t log R_t,ii,   loss = (1/B) Σ_b (1/k) Σ_i λ_{b,i}²
//! ```
//!
//! with J_t = ∂h_{T0+t}/∂h_{T0+t-1} evaluated at the new state.
//!
//! Reverse: through every QR with [`qr_adjoint`], through the tangent map
//! with [`Model::tangent_vjp`] (which adds ∂/∂W and returns the part of
//! dL/dh_t that flows through J_t's dependence on the state), and finally
//! through the state trajectory with one call of [`Model::backward`].
//!
//! Everything runs in f64 (parameters of an f32 caller are widened); the
//! trajectories are independent and run on the available cores, each with
//! its own gradient buffer summed in trajectory order, so the result does
//! not depend on the number of cores. Memory: per running trajectory, its
//! Tp + 1 tangent frames (N×k) and one parameter-sized gradient buffer.

use crate::cpu::qr_f64;
use crate::models::Model;
use crate::real::Real;
use anyhow::{bail, ensure, Result};
use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3, Axis};

/// The flossing loss of one evaluation and its gradient.
#[derive(Clone, Debug)]
pub struct FlossOut<F> {
    /// mean over trajectories of (1/k) Σ_i λ_{b,i}²
    pub loss: F,
    /// d loss / d params, same flat layout as the parameters
    pub grads: Vec<F>,
    /// λ_i averaged over trajectories, column order (i = 0..k), not sorted
    pub exponents: Vec<F>,
}

/// Reverse mode of the thin QR `A = Q R` (A m×k, m ≥ k, R with positive
/// diagonal): from Q̄ (m×k) and R̄ (k×k; only its upper triangle is used,
/// since R's lower entries are not free) return Ā (m×k):
///
/// ```text
/// M = R R̄ᵀ − Q̄ᵀ Q,   Ā = (Q̄ + Q·copyltu(M)) R^{−T},
/// copyltu(M) = tril(M) + tril(M, −1)ᵀ
/// ```
///
/// (checked against finite differences in tests/floss_gradcheck.rs).
pub fn qr_adjoint(q: ArrayView2<f64>, r: ArrayView2<f64>, qbar: ArrayView2<f64>, rbar: ArrayView2<f64>) -> Array2<f64> {
    let (m, k) = q.dim();
    assert!(k <= m && r.dim() == (k, k) && qbar.dim() == (m, k) && rbar.dim() == (k, k), "qr_adjoint shapes");
    let mut rbar_u = rbar.to_owned();
    for i in 0..k {
        for j in 0..i {
            rbar_u[[i, j]] = 0.0;
        }
    }
    let mut mm = r.dot(&rbar_u.t()) - qbar.t().dot(&q);
    for i in 0..k {
        for j in i + 1..k {
            mm[[i, j]] = mm[[j, i]];
        }
    }
    let mut b = Array2::<f64>::zeros((m, k)); // row-major, whatever the inputs' layouts
    b.assign(&qbar);
    ndarray::linalg::general_mat_mul(1.0, &q, &mm, 1.0, &mut b);
    // X Rᵀ = B row by row: R xᵀ = bᵀ, upper-triangular back substitution
    let r = r.as_standard_layout();
    let r = r.as_slice().expect("standard layout");
    let b_s = b.as_slice_mut().expect("fresh array");
    for row in b_s.chunks_exact_mut(k) {
        for i in (0..k).rev() {
            let ri = &r[i * k..(i + 1) * k];
            let acc = row[i] - ri[i + 1..].iter().zip(&row[i + 1..]).map(|(a, c)| a * c).sum::<f64>();
            row[i] = acc / ri[i];
        }
    }
    b
}

/// Sizes of one flossing evaluation, after its inputs have been checked.
pub(crate) struct FlossShape {
    pub n: usize,
    pub t_len: usize,
    pub batch: usize,
    pub k: usize,
}

/// The checks both the CPU and the GPU flossing gradient make on their inputs.
pub(crate) fn validate_inputs<F: Real>(
    model: &Model,
    p: &[F],
    x: ArrayView3<F>,
    h0: ArrayView2<F>,
    q0: &[Array2<F>],
    transient: usize,
) -> Result<FlossShape> {
    let n = model.state_width();
    let (t_len, batch, input) = x.dim();
    ensure!(model.supports_flossing(), "gradient flossing is implemented for the Elman family (rnn, linear), not {}", model.kind().name());
    ensure!(p.len() == model.layout().len(), "flossing: {} parameters given, the model has {}", p.len(), model.layout().len());
    ensure!(batch > 0, "flossing needs at least one trajectory");
    ensure!(input == model.dims().input, "flossing: inputs have width {input}, the model takes {}", model.dims().input);
    ensure!(h0.dim() == (batch, n), "flossing: initial states have shape {:?}, expected ({batch}, {n})", h0.dim());
    ensure!(q0.len() == batch, "flossing: {} sets of tangent vectors for {batch} trajectories", q0.len());
    ensure!(
        t_len > transient,
        "flossing: {t_len} input steps leave no tangent steps after a transient of {transient} (need Tp ≥ 1)"
    );
    let k = q0[0].ncols();
    ensure!(k >= 1 && k <= n, "flossing: k = {k} tangent vectors, must be between 1 and the state width {n}");
    for (b, q) in q0.iter().enumerate() {
        ensure!(q.dim() == (n, k), "flossing: tangent vectors of trajectory {b} have shape {:?}, expected ({n}, {k})", q.dim());
    }
    ensure!(p.iter().all(|v| v.is_finite()), "flossing: non-finite parameters");
    ensure!(x.iter().all(|v| v.is_finite()), "flossing: non-finite inputs");
    ensure!(h0.iter().all(|v| v.is_finite()), "flossing: non-finite initial states");
    ensure!(q0.iter().all(|q| q.iter().all(|v| v.is_finite())), "flossing: non-finite tangent vectors");
    Ok(FlossShape { n, t_len, batch, k })
}

/// One flossing evaluation: B trajectories driven by `x` (T0 + Tp, B, I)
/// from `h0` (B, N); the first `transient` = T0 steps are state-only, then
/// for Tp steps Q̃_t = J_t Q_{t-1}, (Q_t, R_t) = qr(Q̃_t) every step, with k
/// columns and Q_0 = `q0[b]` (N, k; meant to be orthonormal — it is not
/// differentiated). λ_{b,i} = (1/Tp) Σ_t log R_t,ii and
/// loss = mean over b of (1/k) Σ_i λ_{b,i}². `grads` is the exact gradient
/// of `loss` with respect to all parameters.
pub fn floss_loss_grad<F: Real>(
    model: &Model,
    p: &[F],
    x: ArrayView3<F>,
    h0: ArrayView2<F>,
    q0: &[Array2<F>],
    transient: usize,
) -> Result<FlossOut<F>> {
    let FlossShape { n, t_len, batch, k } = validate_inputs(model, p, x, h0, q0, transient)?;

    let tp = t_len - transient;
    let p64: Vec<f64> = p.iter().map(|&v| Real::to_f64(v)).collect();
    let x64: Array3<f64> = x.mapv(Real::to_f64);
    let h064: Array2<f64> = h0.mapv(Real::to_f64);
    let states = model.forward(&p64, x64.view(), h064.view());
    if let Some(pos) = states.iter().position(|v| !v.is_finite()) {
        bail!("flossing: the state trajectory became non-finite at step {}", pos / (batch * n));
    }

    let ctx = Ctx { model, p: &p64, states: states.view(), transient, tp, k, batch };
    let mut grads = vec![0.0f64; p64.len()];
    let mut d_states = Array3::<f64>::zeros((t_len, batch, n));
    let mut loss = 0.0;
    let mut exponents = vec![0.0; k];
    // waves of one trajectory per core, reduced in trajectory order: the
    // result does not depend on the core count, and at most one wave's
    // gradient buffers live at a time
    let threads = std::thread::available_parallelism().map(|v| v.get()).unwrap_or(1).clamp(1, batch);
    for wave in (0..batch).step_by(threads) {
        let ids: Vec<usize> = (wave..(wave + threads).min(batch)).collect();
        let results: Vec<Result<Traj>> = if ids.len() == 1 {
            vec![ctx.trajectory(ids[0], &q0[ids[0]])]
        } else {
            std::thread::scope(|sc| {
                let ctx = &ctx;
                let handles: Vec<_> = ids.iter().map(|&b| sc.spawn(move || ctx.trajectory(b, &q0[b]))).collect();
                handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
            })
        };
        for (&b, r) in ids.iter().zip(results) {
            let tr = r?;
            for (g, v) in grads.iter_mut().zip(&tr.grads) {
                *g += v;
            }
            // h̄ of states slot T0 + t is d_states row T0 + t − 1
            d_states.slice_mut(s![transient.., b, ..]).assign(&tr.hbar);
            loss += tr.lambda.iter().map(|l| l * l).sum::<f64>() / k as f64;
            for (e, l) in exponents.iter_mut().zip(&tr.lambda) {
                *e += l;
            }
        }
    }
    loss /= batch as f64;
    exponents.iter_mut().for_each(|e| *e /= batch as f64);
    model.backward(&p64, x64.view(), states.view(), d_states.view(), &mut grads);
    ensure!(loss.is_finite() && grads.iter().all(|g| g.is_finite()), "flossing: the loss or its gradient is not finite (loss {loss})");
    Ok(FlossOut {
        loss: F::from_f64(loss),
        grads: grads.into_iter().map(F::from_f64).collect(),
        exponents: exponents.into_iter().map(F::from_f64).collect(),
    })
}

struct Ctx<'a> {
    model: &'a Model,
    p: &'a [f64],
    states: ArrayView3<'a, f64>,
    transient: usize,
    tp: usize,
    k: usize,
    batch: usize,
}

/// One trajectory's share: its exponents, its parameter gradient through
/// the tangent maps, and dL/dh_{T0+t} through J_t for t = 1..=Tp (Tp, N).
struct Traj {
    lambda: Vec<f64>,
    grads: Vec<f64>,
    hbar: Array2<f64>,
}

impl Ctx<'_> {
    fn trajectory<F: Real>(&self, b: usize, q0: &Array2<F>) -> Result<Traj> {
        let n = self.states.dim().2;
        let (k, tp) = (self.k, self.tp);
        let h_at = |t: usize| self.states.slice(s![self.transient + t, b, ..]).to_vec();
        // forward: Q_0..Q_Tp and R_1..R_Tp
        let mut qs: Vec<Array2<f64>> = Vec::with_capacity(tp + 1);
        let mut rs: Vec<Array2<f64>> = Vec::with_capacity(tp);
        qs.push(q0.mapv(Real::to_f64));
        let mut sums = vec![0.0; k];
        for t in 1..=tp {
            let (prev, next) = (h_at(t - 1), h_at(t));
            let at = crate::models::StepAt { pre: &[], prev: &prev, next: &next };
            let qt = self.model.tangent(self.p, &at, qs[t - 1].view());
            let qt = qt.as_standard_layout();
            let (qn, r) = qr_f64(qt.as_slice().expect("standard layout"), n, k);
            for (i, s_) in sums.iter_mut().enumerate() {
                let d = r[i * k + i];
                if !(d > 0.0 && d.is_finite()) {
                    bail!(
                        "flossing: tangent vector {i} of trajectory {b} collapsed or blew up at tangent step {t} (R_ii = {d}); \
                         shorten the flossing window or lower k"
                    );
                }
                *s_ += d.ln();
            }
            qs.push(Array2::from_shape_vec((n, k), qn).expect("shape"));
            rs.push(Array2::from_shape_vec((k, k), r).expect("shape"));
        }
        let lambda: Vec<f64> = sums.iter().map(|s_| s_ / tp as f64).collect();

        // reverse: dL/dR_t,ii = 2 λ_i / (k · Tp · B · R_t,ii), Q̄_Tp = 0
        let scale = 2.0 / (k * tp * self.batch) as f64;
        let mut grads = vec![0.0; self.p.len()];
        let mut hbar = Array2::<f64>::zeros((tp, n));
        let mut qbar = Array2::<f64>::zeros((n, k));
        let mut rbar = Array2::<f64>::zeros((k, k));
        for t in (1..=tp).rev() {
            let r = &rs[t - 1];
            for i in 0..k {
                rbar[[i, i]] = scale * lambda[i] / r[[i, i]];
            }
            let abar = qr_adjoint(qs[t].view(), r.view(), qbar.view(), rbar.view());
            let (qprev, ht) = self.model.tangent_vjp(self.p, &h_at(t), qs[t - 1].view(), abar.view(), &mut grads)?;
            hbar.index_axis_mut(Axis(0), t - 1).assign(&ndarray::ArrayView1::from(&ht));
            qbar = qprev;
        }
        Ok(Traj { lambda, grads, hbar })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Dims, ModelKind};

    #[allow(clippy::type_complexity)]
    fn setup(n: usize, k: usize) -> (Model, Vec<f64>, Array3<f64>, Array2<f64>, Vec<Array2<f64>>) {
        let m = Model::new(ModelKind::Rnn, Dims { input: 2, hidden: n, output: 1 }).unwrap();
        let mut rng = crate::rng::Rng::seed(1);
        let p: Vec<f64> = m.init(&Default::default(), &mut rng).iter().map(|&v| v as f64).collect();
        let x = Array3::from_shape_fn((5, 2, 2), |_| rng.normal());
        let h0 = Array2::zeros((2, n));
        let q0 = (0..2)
            .map(|_| {
                let a: Vec<f64> = (0..n * k).map(|_| rng.normal()).collect();
                Array2::from_shape_vec((n, k), qr_f64(&a, n, k).0).unwrap()
            })
            .collect();
        (m, p, x, h0, q0)
    }

    #[test]
    fn floss_bad_inputs_are_errors_not_panics() {
        let (m, p, x, h0, q0) = setup(4, 2);
        assert!(floss_loss_grad(&m, &p, x.view(), h0.view(), &q0, 2).is_ok());
        // Tp = 0
        assert!(floss_loss_grad(&m, &p, x.view(), h0.view(), &q0, 5).is_err());
        assert!(floss_loss_grad(&m, &p, x.view(), h0.view(), &q0, 9).is_err());
        // wrong parameter count, input width, h0 shape, q0 count/shape, k > N
        assert!(floss_loss_grad(&m, &p[1..], x.view(), h0.view(), &q0, 2).is_err());
        let x3 = Array3::<f64>::zeros((5, 2, 3));
        assert!(floss_loss_grad(&m, &p, x3.view(), h0.view(), &q0, 2).is_err());
        let h_bad = Array2::<f64>::zeros((3, 4));
        assert!(floss_loss_grad(&m, &p, x.view(), h_bad.view(), &q0, 2).is_err());
        assert!(floss_loss_grad(&m, &p, x.view(), h0.view(), &q0[..1], 2).is_err());
        let q_bad = vec![q0[0].clone(), Array2::zeros((4, 3))];
        assert!(floss_loss_grad(&m, &p, x.view(), h0.view(), &q_bad, 2).is_err());
        let q_wide = vec![Array2::zeros((4, 5)), Array2::zeros((4, 5))];
        assert!(floss_loss_grad(&m, &p, x.view(), h0.view(), &q_wide, 2).is_err());
        let q_none = vec![Array2::zeros((4, 0)), Array2::zeros((4, 0))];
        assert!(floss_loss_grad(&m, &p, x.view(), h0.view(), &q_none, 2).is_err());
        // non-finite values
        let mut pn = p.clone();
        pn[0] = f64::NAN;
        assert!(floss_loss_grad(&m, &pn, x.view(), h0.view(), &q0, 2).is_err());
        let mut xn = x.clone();
        xn[[1, 1, 1]] = f64::INFINITY;
        assert!(floss_loss_grad(&m, &p, xn.view(), h0.view(), &q0, 2).is_err());
        let mut hn = h0.clone();
        hn[[0, 0]] = f64::NAN;
        assert!(floss_loss_grad(&m, &p, x.view(), hn.view(), &q0, 2).is_err());
        let mut qn = q0.clone();
        qn[1][[0, 0]] = f64::NAN;
        assert!(floss_loss_grad(&m, &p, x.view(), h0.view(), &qn, 2).is_err());
        // rank-deficient tangent vectors: R_ii = 0
        let qz = vec![Array2::zeros((4, 2)), Array2::zeros((4, 2))];
        assert!(floss_loss_grad(&m, &p, x.view(), h0.view(), &qz, 2).is_err());
    }

    #[test]
    fn floss_f32_matches_f64() {
        let (m, p, x, h0, q0) = setup(6, 3);
        let a = floss_loss_grad(&m, &p, x.view(), h0.view(), &q0, 1).unwrap();
        let p32: Vec<f32> = p.iter().map(|&v| v as f32).collect();
        let q32: Vec<Array2<f32>> = q0.iter().map(|q| q.mapv(|v| v as f32)).collect();
        let b = floss_loss_grad(&m, &p32, x.mapv(|v| v as f32).view(), h0.mapv(|v| v as f32).view(), &q32, 1).unwrap();
        assert!((a.loss - b.loss as f64).abs() < 1e-4 * a.loss.abs().max(1e-3));
        let gmax = a.grads.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        for (g, h) in a.grads.iter().zip(&b.grads) {
            assert!((g - *h as f64).abs() < 1e-3 * gmax, "{g} vs {h}");
        }
    }
}
