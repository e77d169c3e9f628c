//! Autoregressive WARP (CPU reference): where a row's `feedback` is 1 the
//! input u_t is the model's own prediction ŷ_{t-1} of it instead of the
//! data x_t, so the scan and the decoding interleave step by step, and the
//! gradient flows back through every fed-back prediction (teacher forcing
//! with probability p draws feedback = 1 with probability 1 − p).

use super::cpu::{add, tau, RootScratch};
use super::Warp;
use crate::cpu::view2;
use crate::real::Real;
use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3};

/// What the backward pass needs from an autoregressive forward.
pub struct ArTrace<F> {
    /// `(T + 1, B, D)` as in the plain scan
    pub states: Array3<F>,
    /// the inputs actually fed `(T, B, d)`
    pub inputs: Array3<F>,
    /// outputs `(T·B, O)`
    pub y: Array2<F>,
}

impl Warp {
    /// One row's output: the root network's, or (WARP-Phys) the integration
    /// step from the state `u` with the root's parameters.
    pub(super) fn decode_row<F: Real>(&self, theta: &[F], tau_t: F, u: &[F], raw: &mut [F], sc: &mut RootScratch<F>, y: &mut [F]) {
        let xin: &[F] = if self.root_x { u } else { &[] };
        match self.phys {
            None => self.root_row(theta, tau_t, xin, sc.acts_mut(), y),
            Some(sys) => {
                self.root_row(theta, tau_t, xin, sc.acts_mut(), raw);
                super::phys::step(sys, raw, u, y);
            }
        }
    }

    fn delta_row<F: Real>(&self, inputs: &Array3<F>, t: usize, out: &mut Array2<F>) {
        let (t_len, _, c) = inputs.dim();
        if t == 0 {
            out.fill(F::zero());
            return;
        }
        out.slice_mut(s![.., ..c]).assign(&(&inputs.slice(s![t, .., ..]) - &inputs.slice(s![t - 1, .., ..])));
        out.column_mut(c).fill(tau::<F>(t, t_len) - tau::<F>(t - 1, t_len));
    }

    /// Forward with fed-back predictions; `feedback` has one entry per row
    /// `t·B + b` (row 0's are ignored: x_0 starts every sequence).
    pub fn forward_ar<F: Real>(&self, p: &[F], x: ArrayView3<F>, feedback: &[f32]) -> ArTrace<F> {
        let (t_len, batch, c) = x.dim();
        let o = self.dims.output;
        // outputs: the next row, or (Gaussian NLL) its means then sds; the means are fed back
        assert!(o == c || (o == 2 * c && self.phys.is_none()), "autoregressive WARP predicts its own inputs");
        let d = self.root.size;
        let a = view2(p, &self.layout, "A");
        let bm = view2(p, &self.layout, "B");
        let one = F::one();
        let mut states = Array3::zeros((t_len + 1, batch, d));
        let mut inputs = Array3::zeros((t_len, batch, c));
        let mut y = Array2::zeros((t_len * batch, o));
        if t_len == 0 {
            return ArTrace { states, inputs, y };
        }
        states.slice_mut(s![0, .., ..]).assign(&self.theta0_rows(p, x.slice(s![0, .., ..])).0);
        let mut delta = Array2::zeros((batch, c + 1));
        let mut sc = RootScratch::new(self);
        let mut raw = vec![F::zero(); self.root.layers.last().expect("a layer").out];
        for t in 0..t_len {
            for b in 0..batch {
                let own = t > 0 && feedback[t * batch + b] > 0.5;
                let src = if own { y.slice(s![(t - 1) * batch + b, ..c]).to_owned() } else { x.slice(s![t, b, ..]).to_owned() };
                inputs.slice_mut(s![t, b, ..]).assign(&src);
            }
            self.delta_row(&inputs, t, &mut delta);
            let (prev, mut next) = states.multi_slice_mut((s![t, .., ..], s![t + 1, .., ..]));
            general_mat_mul(one, &prev, &a.t(), F::zero(), &mut next);
            general_mat_mul(one, &delta, &bm.t(), one, &mut next);
            let tau_t = tau::<F>(t, t_len);
            for b in 0..batch {
                let theta = states.slice(s![t + 1, b, ..]);
                let u = inputs.slice(s![t, b, ..]);
                let mut row = y.row_mut(t * batch + b);
                self.decode_row(theta.as_slice().expect("row"), tau_t, u.as_slice().expect("row"), &mut raw, &mut sc, row.as_slice_mut().expect("row"));
            }
        }
        ArTrace { states, inputs, y }
    }

    /// From dL/dy `(T·B, O)` add the gradients of every parameter, through
    /// the scan, the decoding and each fed-back prediction.
    pub fn backward_ar<F: Real>(&self, p: &[F], x: ArrayView3<F>, feedback: &[f32], tr: &ArTrace<F>, dy: ArrayView2<F>, grads: &mut [F]) {
        let (t_len, batch, c) = x.dim();
        let d = self.root.size;
        let a = view2(p, &self.layout, "A");
        let bm = view2(p, &self.layout, "B");
        let b_in = bm.slice(s![.., ..c]);
        let one = F::one();
        let mut da = Array2::<F>::zeros((d, d));
        let mut db = Array2::<F>::zeros((d, c + 1));
        // dL/dθ_{t+1} through A from the steps after t
        let mut g_next = Array2::<F>::zeros((batch, d));
        let mut g = Array2::<F>::zeros((batch, d));
        let mut gu = Array3::<F>::zeros((t_len + 1, batch, c));
        let mut delta = Array2::zeros((batch, c + 1));
        let mut dyt = vec![F::zero(); self.dims.output];
        let mut sc = RootScratch::new(self);
        let n_raw = self.root.layers.last().expect("a layer").out;
        let mut raw = vec![F::zero(); n_raw];
        let mut d_raw = vec![F::zero(); n_raw];
        for t in (0..t_len).rev() {
            let tau_t = tau::<F>(t, t_len);
            for b in 0..batch {
                for (k, v) in dyt.iter_mut().enumerate() {
                    *v = dy[[t * batch + b, k]];
                }
                // ŷ_t (its means) was fed as u_{t+1}
                if t + 1 < t_len && feedback[(t + 1) * batch + b] > 0.5 {
                    for k in 0..c {
                        dyt[k] = dyt[k] + gu[[t + 1, b, k]];
                    }
                }
                let theta = tr.states.slice(s![t + 1, b, ..]);
                let theta = theta.as_slice().expect("row");
                let u = tr.inputs.slice(s![t, b, ..]);
                let u = u.as_slice().expect("row");
                let xin: &[F] = if self.root_x { u } else { &[] };
                let mut row = g.row_mut(b);
                // dL/du_t: through the root's input and (WARP-Phys) the integration step
                let mut du = vec![F::zero(); c];
                match self.phys {
                    None => self.root_row_backward(theta, tau_t, xin, &dyt, row.as_slice_mut().expect("row"), &mut du[..xin.len()], &mut sc),
                    Some(sys) => {
                        self.root_row(theta, tau_t, xin, sc.acts_mut(), &mut raw);
                        super::phys::step_backward(sys, &raw, u, &dyt, &mut d_raw, &mut du);
                        self.root_row_backward(theta, tau_t, xin, &d_raw, row.as_slice_mut().expect("row"), &mut du[..xin.len()], &mut sc);
                    }
                }
                for k in 0..c {
                    gu[[t, b, k]] = gu[[t, b, k]] + du[k];
                }
            }
            g.zip_mut_with(&g_next, |a, &b| *a = *a + b);
            self.delta_row(&tr.inputs, t, &mut delta);
            general_mat_mul(one, &g.t(), &tr.states.slice(s![t, .., ..]), one, &mut da);
            general_mat_mul(one, &g.t(), &delta, one, &mut db);
            if t > 0 {
                let gd = g.dot(&b_in);
                gu.slice_mut(s![t, .., ..]).zip_mut_with(&gd, |u, &v| *u = *u + v);
                gu.slice_mut(s![t - 1, .., ..]).zip_mut_with(&gd, |u, &v| *u = *u - v);
            }
            general_mat_mul(one, &g, &a, F::zero(), &mut g_next);
        }
        add(grads, self.layout.offset("A"), da.iter());
        add(grads, self.layout.offset("B"), db.iter());
        if t_len > 0 {
            self.theta0_backward(p, x.slice(s![0, .., ..]), g_next.view(), grads);
        }
    }
}
