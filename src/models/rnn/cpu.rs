//! CPU reference for the Elman RNN, generic over f32/f64.

use super::{Activation, Rnn};
use crate::cpu::{view1, view2};
use crate::real::Real;
use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3, Axis, Zip};

impl Rnn {
    fn activate<F: Real>(&self, a: &mut Array2<F>) {
        if self.act == Activation::Tanh {
            a.mapv_inplace(|v| v.tanh());
        }
    }

    /// Multiply `d` by act'(pre) written in terms of the output `h`.
    fn times_act_grad<F: Real>(&self, d: &mut Array2<F>, h: ArrayView2<F>) {
        if self.act == Activation::Tanh {
            Zip::from(d).and(h).for_each(|d, &h| *d = *d * (F::one() - h * h));
        }
    }

    pub fn forward<F: Real>(&self, p: &[F], x: ArrayView3<F>, h0: ArrayView2<F>) -> Array3<F> {
        let (t_len, batch, _) = x.dim();
        let h = self.dims.hidden;
        let w_in = view2(p, &self.layout, "w_in");
        let w_rec = view2(p, &self.layout, "w_rec");
        let b = view1(p, &self.layout, "b");
        let mut hs = Array3::zeros((t_len + 1, batch, h));
        hs.slice_mut(s![0, .., ..]).assign(&h0);
        for t in 0..t_len {
            let mut pre = x.index_axis(Axis(0), t).dot(&w_in.t());
            pre = pre + hs.index_axis(Axis(0), t).dot(&w_rec.t()) + &b;
            self.activate(&mut pre);
            hs.index_axis_mut(Axis(0), t + 1).assign(&pre);
        }
        hs
    }

    pub fn backward<F: Real>(
        &self,
        p: &[F],
        x: ArrayView3<F>,
        states: ArrayView3<F>,
        d_states: ArrayView3<F>,
        grads: &mut [F],
    ) -> Array2<F> {
        let (t_len, batch, input) = x.dim();
        let h = self.dims.hidden;
        let w_rec = view2(p, &self.layout, "w_rec");
        let mut dw_in = Array2::<F>::zeros((h, input));
        let mut dw_rec = Array2::<F>::zeros((h, h));
        let mut db = ndarray::Array1::<F>::zeros(h);
        // da_next = dL/d(pre-activation) at t+1
        let mut da_next = Array2::<F>::zeros((batch, h));
        for t in (0..t_len).rev() {
            let mut da = d_states.index_axis(Axis(0), t).to_owned() + da_next.dot(&w_rec);
            self.times_act_grad(&mut da, states.index_axis(Axis(0), t + 1));
            dw_rec = dw_rec + da.t().dot(&states.index_axis(Axis(0), t));
            dw_in = dw_in + da.t().dot(&x.index_axis(Axis(0), t));
            db = db + da.sum_axis(Axis(0));
            da_next = da;
        }
        let add = |grads: &mut [F], name: &str, vals: &[F]| {
            let o = self.layout.offset(name);
            for (g, v) in grads[o..o + vals.len()].iter_mut().zip(vals) {
                *g = *g + *v;
            }
        };
        add(grads, "w_in", dw_in.as_standard_layout().as_slice().unwrap());
        add(grads, "w_rec", dw_rec.as_standard_layout().as_slice().unwrap());
        add(grads, "b", db.as_slice().unwrap());
        da_next.dot(&w_rec)
    }

    /// J_t Q with J_t = diag(act'(h_t)) w_rec.
    pub fn tangent<F: Real>(&self, p: &[F], h_t: &[F], q: ArrayView2<F>) -> Array2<F> {
        let w_rec = view2(p, &self.layout, "w_rec");
        let mut out = w_rec.dot(&q);
        if self.act == Activation::Tanh {
            for (mut row, &h) in out.axis_iter_mut(Axis(0)).zip(h_t) {
                row.mapv_inplace(|v| v * (F::one() - h * h));
            }
        }
        out
    }
}

