//! CPU reference for the Elman RNN, generic over f32/f64.
//!
//! Shaped like the GPU path: the input projection and the weight gradients
//! are single products over all T·B rows; only the recurrence loops over
//! time, writing in place (no per-step allocation: small models such as the
//! linear-RNN study are dominated by it otherwise).

use super::{Activation, Rnn};
use crate::cpu::view2;
use crate::models::input::{project_backward, project_into, SeqInput};
use crate::real::Real;
use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3, Axis};

/// Batches up to this size run the recurrence as plain loops.
const SMALL_BATCH: usize = 4;

/// Dot product with four partial sums (lets the compiler use SIMD lanes).
fn dot<F: Real>(a: &[F], b: &[F]) -> F {
    let mut acc = [F::zero(); 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            acc[l] = acc[l] + x[l] * y[l];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (x, y) in ra.iter().zip(rb) {
        s = s + *x * *y;
    }
    s
}

impl Rnn {
    /// dL/d(pre-activation) from dL/dh, written in terms of the output h.
    fn act_grad<F: Real>(&self, h: F) -> F {
        match self.act {
            Activation::Tanh => F::one() - h * h,
            Activation::Sigmoid => h * (F::one() - h),
            Activation::Linear => F::one(),
        }
    }

    /// d(act_grad)/dh, for the flossing gradient's path through D_t.
    fn act_grad_slope<F: Real>(&self, h: F) -> F {
        match self.act {
            Activation::Tanh => -(h + h),
            Activation::Sigmoid => F::one() - (h + h),
            Activation::Linear => F::zero(),
        }
    }

    pub fn forward<F: Real>(&self, p: &[F], x: &SeqInput<F>, h0: ArrayView2<F>) -> Array3<F> {
        let (t_len, batch) = (x.t_len(), x.batch());
        let h = self.dims.hidden;
        let w_rec = view2(p, &self.layout, "w_rec");
        let mut hs = Array3::zeros((t_len + 1, batch, h));
        hs.slice_mut(s![0, .., ..]).assign(&h0);
        {
            // pre-activations of every step from the inputs, into slots 1..=T
            let mut rest = hs.slice_mut(s![1.., .., ..]);
            let pre = rest.view_mut().into_shape_with_order((t_len * batch, h)).expect("contiguous states");
            project_into(p, &self.layout, x, pre);
        }
        for t in 0..t_len {
            let (prev, mut next) = hs.multi_slice_mut((s![t, .., ..], s![t + 1, .., ..]));
            if batch <= SMALL_BATCH {
                // a GEMM call costs more than the product at these sizes
                let w = w_rec.as_slice().expect("row-major w_rec");
                for (pr, mut nx) in prev.rows().into_iter().zip(next.rows_mut()) {
                    let pr = pr.as_slice().expect("contiguous state");
                    for (i, v) in nx.iter_mut().enumerate() {
                        *v = *v + dot(&w[i * h..(i + 1) * h], pr);
                    }
                }
            } else {
                general_mat_mul(F::one(), &prev.view(), &w_rec.t(), F::one(), &mut next);
            }
            match self.act {
                Activation::Tanh => next.mapv_inplace(|v| v.tanh()),
                Activation::Sigmoid => next.mapv_inplace(crate::models::lstm::cpu::sigmoid),
                Activation::Linear => {}
            }
        }
        hs
    }

    pub fn backward<F: Real>(
        &self,
        p: &[F],
        x: &SeqInput<F>,
        states: ArrayView3<F>,
        d_states: ArrayView3<F>,
        grads: &mut [F],
    ) -> Array2<F> {
        let (t_len, batch) = (x.t_len(), x.batch());
        let h = self.dims.hidden;
        let w_rec = view2(p, &self.layout, "w_rec");
        // da_t = (d_states_t + da_{t+1} · w_rec) ⊙ act'(h_t), written in place
        let mut da = d_states.to_owned();
        for t in (0..t_len).rev() {
            if t + 1 < t_len {
                let (mut cur, next) = da.multi_slice_mut((s![t, .., ..], s![t + 1, .., ..]));
                if batch <= SMALL_BATCH {
                    let w = w_rec.as_slice().expect("row-major w_rec");
                    for (nx, mut cr) in next.rows().into_iter().zip(cur.rows_mut()) {
                        let cr = cr.as_slice_mut().expect("contiguous");
                        for (j, &g) in nx.iter().enumerate() {
                            for (c, &wv) in cr.iter_mut().zip(&w[j * h..(j + 1) * h]) {
                                *c = *c + g * wv;
                            }
                        }
                    }
                } else {
                    general_mat_mul(F::one(), &next.view(), &w_rec, F::one(), &mut cur);
                }
            }
            if self.act != Activation::Linear {
                let mut cur = da.index_axis_mut(Axis(0), t);
                cur.zip_mut_with(&states.index_axis(Axis(0), t + 1), |d, &hv| *d = *d * self.act_grad(hv));
            }
        }
        let rows = t_len * batch;
        let da2 = da.to_shape((rows, h)).expect("contiguous");
        let prev = states.slice(s![..t_len, .., ..]);
        let prev2 = prev.to_shape((rows, h)).expect("contiguous states");
        let add = |grads: &mut [F], name: &str, vals: &Array2<F>| {
            let o = self.layout.offset(name);
            for (g, v) in grads[o..o + vals.len()].iter_mut().zip(vals.iter()) {
                *g = *g + *v;
            }
        };
        add(grads, "w_rec", &da2.t().dot(&prev2));
        project_backward(&self.layout, x, da2.view(), grads);
        if t_len == 0 {
            return Array2::zeros((batch, h));
        }
        da.index_axis(Axis(0), 0).dot(&w_rec)
    }

    /// J_t Q with J_t = diag(act'(h_t)) w_rec.
    pub fn tangent<F: Real>(&self, p: &[F], h_t: &[F], q: ArrayView2<F>) -> Array2<F> {
        let w_rec = view2(p, &self.layout, "w_rec");
        let mut out = w_rec.dot(&q);
        for (mut row, &h) in out.axis_iter_mut(Axis(0)).zip(h_t) {
            let g = self.act_grad(h);
            row.mapv_inplace(|v| v * g);
        }
        out
    }

    /// Vector-Jacobian product of [`Rnn::tangent`] for one trajectory
    /// (gradient flossing): with Z = w_rec Q_prev, Q̃ = D Z, D = diag(act'(h_t))
    /// and Q̃̄ = `qbar_new` (S, k), adds W̄ = Z̄ Q_prevᵀ (Z̄ = D Q̃̄) into
    /// `grads` and returns (Q̄_prev = w_recᵀ Z̄, h̄_t) where h̄_t is the part of
    /// dL/dh_t that flows through D (−2 h_t ⊙ D̄ for tanh, (1 − 2 h_t) ⊙ D̄
    /// for the sigmoid, 0 for linear).
    pub fn tangent_vjp<F: Real>(
        &self,
        p: &[F],
        h_t: &[F],
        q_prev: ArrayView2<F>,
        qbar_new: ArrayView2<F>,
        grads: &mut [F],
    ) -> (Array2<F>, Vec<F>) {
        let w_rec = view2(p, &self.layout, "w_rec");
        let z = w_rec.dot(&q_prev);
        let mut zbar = qbar_new.to_owned();
        let mut hbar = vec![F::zero(); h_t.len()];
        for (i, (mut row, &h)) in zbar.axis_iter_mut(Axis(0)).zip(h_t).enumerate() {
            if self.act != Activation::Linear {
                // D̄_i = Σ_c Q̃̄_ic Z_ic, and D_i is a function of h_i
                let dbar = row.iter().zip(z.row(i)).fold(F::zero(), |a, (&g, &zv)| a + g * zv);
                hbar[i] = self.act_grad_slope(h) * dbar;
            }
            let g = self.act_grad(h);
            row.mapv_inplace(|v| v * g);
        }
        let o = self.layout.offset("w_rec");
        let dw = zbar.dot(&q_prev.t());
        for (g, v) in grads[o..o + dw.len()].iter_mut().zip(dw.iter()) {
            *g = *g + *v;
        }
        (w_rec.t().dot(&zbar), hbar)
    }
}
