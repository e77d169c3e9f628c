//! CPU reference for the LSTM, generic over f32/f64. Input projections and
//! weight gradients are single products over all T·B rows; the recurrence
//! loops over time.

use super::Lstm;
use crate::cpu::view2;
use crate::models::input::{project, project_backward, SeqInput};
use crate::models::StepAt;
use crate::real::Real;
use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3};

pub(crate) fn sigmoid<F: Real>(v: F) -> F {
    F::one() / (F::one() + (-v).exp())
}

impl Lstm {
    /// Gate activations (i, f, g, o) for each row `t·B + b` given the
    /// pre-activations from the input and the previous states.
    fn gates<F: Real>(&self, p: &[F], pre: &Array2<F>, states: ArrayView3<F>) -> Array2<F> {
        let (t1, batch, _) = states.dim();
        let h = self.dims.hidden;
        let w = view2(p, &self.layout, "w_rec");
        let prev = states.slice(s![..t1 - 1, .., ..h]);
        let prev = prev.to_shape(((t1 - 1) * batch, h)).expect("states");
        let mut a = pre.clone();
        general_mat_mul(F::one(), &prev, &w.t(), F::one(), &mut a);
        activate(&mut a, h);
        a
    }

    pub fn forward<F: Real>(&self, p: &[F], x: &SeqInput<F>, s0: ArrayView2<F>) -> Array3<F> {
        let (t_len, batch) = (x.t_len(), x.batch());
        let h = self.dims.hidden;
        let pre = project(p, &self.layout, x);
        let w = view2(p, &self.layout, "w_rec");
        let mut st = Array3::zeros((t_len + 1, batch, 2 * h));
        st.slice_mut(s![0, .., ..]).assign(&s0);
        let mut a = Array2::zeros((batch, 4 * h));
        for t in 0..t_len {
            a.assign(&pre.slice(s![t * batch..(t + 1) * batch, ..]));
            general_mat_mul(F::one(), &st.slice(s![t, .., ..h]), &w.t(), F::one(), &mut a);
            activate(&mut a, h);
            for b in 0..batch {
                for i in 0..h {
                    let (ig, fg, gg, og) = (a[[b, i]], a[[b, h + i]], a[[b, 2 * h + i]], a[[b, 3 * h + i]]);
                    let c = fg * st[[t, b, h + i]] + ig * gg;
                    st[[t + 1, b, h + i]] = c;
                    st[[t + 1, b, i]] = og * c.tanh();
                }
            }
        }
        st
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
        let w = view2(p, &self.layout, "w_rec");
        let pre = project(p, &self.layout, x);
        let gates = self.gates(p, &pre, states);
        let mut da = Array2::<F>::zeros((t_len * batch, 4 * h));
        let mut dh_carry = Array2::<F>::zeros((batch, h));
        let mut dc_carry = Array2::<F>::zeros((batch, h));
        let one = F::one();
        for t in (0..t_len).rev() {
            for b in 0..batch {
                let r = t * batch + b;
                for i in 0..h {
                    let (ig, fg, gg, og) = (gates[[r, i]], gates[[r, h + i]], gates[[r, 2 * h + i]], gates[[r, 3 * h + i]]);
                    let tc = states[[t + 1, b, h + i]].tanh();
                    let dh = d_states[[t, b, i]] + dh_carry[[b, i]];
                    let dc = d_states[[t, b, h + i]] + dc_carry[[b, i]] + dh * og * (one - tc * tc);
                    da[[r, i]] = dc * gg * ig * (one - ig);
                    da[[r, h + i]] = dc * states[[t, b, h + i]] * fg * (one - fg);
                    da[[r, 2 * h + i]] = dc * ig * (one - gg * gg);
                    da[[r, 3 * h + i]] = dh * tc * og * (one - og);
                    dc_carry[[b, i]] = dc * fg;
                }
            }
            let da_t = da.slice(s![t * batch..(t + 1) * batch, ..]);
            general_mat_mul(one, &da_t, &w, F::zero(), &mut dh_carry);
        }
        let rows = t_len * batch;
        let prev = states.slice(s![..t_len, .., ..h]);
        let prev = prev.to_shape((rows, h)).expect("states");
        let dw = da.t().dot(&prev);
        let o = self.layout.offset("w_rec");
        for (g, v) in grads[o..o + dw.len()].iter_mut().zip(dw.iter()) {
            *g = *g + *v;
        }
        project_backward(&self.layout, x, da.view(), grads);
        let mut d0 = Array2::zeros((batch, 2 * h));
        d0.slice_mut(s![.., ..h]).assign(&dh_carry);
        d0.slice_mut(s![.., h..]).assign(&dc_carry);
        d0
    }

    /// J_t Q for the state `[h; c]`: with da = w_rec dh,
    /// dc' = f dc + c_{t-1} df + g di + i dg and dh' = tanh(c_t) do + o (1 − tanh² c_t) dc'.
    pub fn tangent<F: Real>(&self, p: &[F], at: &StepAt<F>, q: ArrayView2<F>) -> Array2<F> {
        let h = self.dims.hidden;
        let w = view2(p, &self.layout, "w_rec");
        let hp = ndarray::ArrayView1::from(&at.prev[..h]);
        let mut a = Array2::from_shape_vec((1, 4 * h), at.pre.to_vec()).expect("pre");
        a.row_mut(0).scaled_add(F::one(), &w.dot(&hp));
        activate(&mut a, h);
        let da = w.dot(&q.slice(s![..h, ..]));
        let k = q.dim().1;
        let one = F::one();
        let mut out = Array2::zeros((2 * h, k));
        for i in 0..h {
            let (ig, fg, gg, og) = (a[[0, i]], a[[0, h + i]], a[[0, 2 * h + i]], a[[0, 3 * h + i]]);
            let tc = at.next[h + i].tanh();
            let cp = at.prev[h + i];
            for c in 0..k {
                let di = ig * (one - ig) * da[[i, c]];
                let df = fg * (one - fg) * da[[h + i, c]];
                let dg = (one - gg * gg) * da[[2 * h + i, c]];
                let dout = og * (one - og) * da[[3 * h + i, c]];
                let dc = fg * q[[h + i, c]] + cp * df + gg * di + ig * dg;
                out[[h + i, c]] = dc;
                out[[i, c]] = tc * dout + og * (one - tc * tc) * dc;
            }
        }
        out
    }
}

/// In place: (i, f, o) blocks through σ, the g block through tanh.
fn activate<F: Real>(a: &mut Array2<F>, h: usize) {
    for mut row in a.rows_mut() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = if (2 * h..3 * h).contains(&j) { v.tanh() } else { sigmoid(*v) };
        }
    }
}
