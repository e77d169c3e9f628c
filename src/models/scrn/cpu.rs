//! CPU reference for the SCRN, generic over f32/f64.

use super::{Scrn, ScrnForm};
use crate::cpu::{add_weight_grad, view2};
use crate::models::input::{project, project_backward, SeqInput};
use crate::models::lstm::cpu::sigmoid;
use crate::models::StepAt;
use crate::real::Real;
use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3, Axis};

impl Scrn {
    /// α of every context unit (looked up once per call: the layout lookup
    /// is a search by name).
    fn alphas<F: Real>(&self, p: &[F]) -> Vec<F> {
        match self.layout.get("alpha") {
            Ok(v) if v.len() == 1 => vec![p[v.offset]; self.context],
            Ok(v) => p[v.range()].to_vec(),
            Err(_) => vec![F::from_f64(self.alpha); self.context],
        }
    }

    pub fn forward<F: Real>(&self, p: &[F], x: &SeqInput<F>, s0: ArrayView2<F>) -> Array3<F> {
        let (t_len, batch) = (x.t_len(), x.batch());
        let (h, m) = (self.dims.hidden, self.context);
        let pre = project(p, &self.layout, x);
        let r = view2(p, &self.layout, "w_rec");
        let pm = view2(p, &self.layout, "w_ctx");
        let one = F::one();
        let alphas = self.alphas(p);
        let mut st = Array3::zeros((t_len + 1, batch, h + m));
        st.slice_mut(s![0, .., ..]).assign(&s0);
        let mut a = Array2::zeros((batch, h));
        for t in 0..t_len {
            for b in 0..batch {
                for (j, &al) in alphas.iter().enumerate() {
                    st[[t + 1, b, h + j]] = (one - al) * pre[[t * batch + b, h + j]] + al * st[[t, b, h + j]];
                }
            }
            a.assign(&pre.slice(s![t * batch..(t + 1) * batch, ..h]));
            general_mat_mul(one, &st.slice(s![t, .., ..h]), &r.t(), one, &mut a);
            let src = if self.form == ScrnForm::Paper { t + 1 } else { t };
            general_mat_mul(one, &st.slice(s![src, .., h..]), &pm.t(), one, &mut a);
            st.slice_mut(s![t + 1, .., ..h]).assign(&a.mapv(sigmoid));
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
        let (h, m) = (self.dims.hidden, self.context);
        let rows = t_len * batch;
        let pre = project(p, &self.layout, x);
        let r = view2(p, &self.layout, "w_rec");
        let pm = view2(p, &self.layout, "w_ctx");
        let one = F::one();
        let alphas = self.alphas(p);
        let mut d_pre = Array2::<F>::zeros((rows, h + m));
        let mut dh_carry = Array2::<F>::zeros((batch, h));
        let mut ds_carry = Array2::<F>::zeros((batch, m));
        // code form: s_{t-1} receives da_t P, applied one step later
        let mut pending = Array2::<F>::zeros((batch, m));
        let mut dalpha = vec![F::zero(); m];
        let mut da_t = Array2::<F>::zeros((batch, h));
        let mut from_h = Array2::<F>::zeros((batch, m));
        let mut dh = Array2::<F>::zeros((batch, h));
        let mut ds = Array2::<F>::zeros((batch, m));
        for t in (0..t_len).rev() {
            // dL/dh_t: from this step's readout and from step t + 1
            for b in 0..batch {
                for i in 0..h {
                    dh[[b, i]] = d_states[[t, b, i]] + dh_carry[[b, i]];
                }
            }
            self.clip_state_grad(&mut dh);
            for b in 0..batch {
                for i in 0..h {
                    let hv = states[[t + 1, b, i]];
                    da_t[[b, i]] = dh[[b, i]] * hv * (one - hv);
                }
            }
            general_mat_mul(one, &da_t, &pm, F::zero(), &mut from_h);
            let (via_h, next_pending) = match self.form {
                ScrnForm::Paper => (from_h.clone(), Array2::zeros((batch, m))),
                ScrnForm::Code => (pending.clone(), from_h.clone()),
            };
            // dL/ds_t: readout, step t + 1 (through α and, in the code
            // form, P) and, in the paper form, this step's fast layer
            for b in 0..batch {
                for j in 0..m {
                    ds[[b, j]] = d_states[[t, b, h + j]] + ds_carry[[b, j]] + via_h[[b, j]];
                }
            }
            self.clip_state_grad(&mut ds);
            for b in 0..batch {
                let row = t * batch + b;
                for i in 0..h {
                    d_pre[[row, i]] = da_t[[b, i]];
                }
                for (j, &al) in alphas.iter().enumerate() {
                    let ds = ds[[b, j]];
                    d_pre[[row, h + j]] = (one - al) * ds;
                    dalpha[j] = dalpha[j] + ds * (states[[t, b, h + j]] - pre[[row, h + j]]);
                    ds_carry[[b, j]] = al * ds;
                }
            }
            pending = next_pending;
            general_mat_mul(one, &da_t, &r, F::zero(), &mut dh_carry);
        }
        let da = d_pre.slice(s![.., ..h]);
        let h_prev = states.slice(s![..t_len, .., ..h]);
        let h_prev = h_prev.to_shape((rows, h)).expect("states");
        add_weight_grad(&self.layout, "w_rec", da, h_prev.view(), grads);
        let src = if self.form == ScrnForm::Paper { 1 } else { 0 };
        let s_src = states.slice(s![src..src + t_len, .., h..]);
        let s_src = s_src.to_shape((rows, m)).expect("states");
        add_weight_grad(&self.layout, "w_ctx", da, s_src.view(), grads);
        if let Ok(v) = self.layout.get("alpha") {
            if v.len() == 1 {
                grads[v.offset] = grads[v.offset] + dalpha.iter().fold(F::zero(), |a, &b| a + b);
            } else {
                for (j, d) in dalpha.iter().enumerate() {
                    grads[v.offset + j] = grads[v.offset + j] + *d;
                }
            }
        }
        project_backward(&self.layout, x, d_pre.view(), grads);
        let mut d0 = Array2::zeros((batch, h + m));
        d0.slice_mut(s![.., ..h]).assign(&dh_carry);
        ds_carry.zip_mut_with(&pending, |a, &b| *a = *a + b);
        d0.slice_mut(s![.., h..]).assign(&ds_carry);
        d0
    }

    /// The reference code's gradInput clip: `d` (one step's dL/dh or dL/ds,
    /// all streams) rescaled to Frobenius norm ≤ `state_grad_clip`.
    fn clip_state_grad<F: Real>(&self, d: &mut Array2<F>) {
        let Some(c) = self.state_grad_clip else { return };
        let norm = d.iter().map(|&v| Real::to_f64(v).powi(2)).sum::<f64>().sqrt();
        if norm > c {
            let k = F::from_f64(c / norm);
            d.mapv_inplace(|v| v * k);
        }
    }

    /// J_t Q for the state [h; s]: ds' = α ds, dh' = h_t(1 − h_t) ⊙ (R dh + P ds')
    /// (the code form reads P ds).
    pub fn tangent<F: Real>(&self, p: &[F], at: &StepAt<F>, q: ArrayView2<F>) -> Array2<F> {
        let h = self.dims.hidden;
        let r = view2(p, &self.layout, "w_rec");
        let pm = view2(p, &self.layout, "w_ctx");
        let mut out = Array2::zeros(q.dim());
        for (j, &al) in self.alphas(p).iter().enumerate() {
            out.row_mut(h + j).assign(&q.row(h + j).mapv(|v| v * al));
        }
        let ds = match self.form {
            ScrnForm::Paper => out.slice(s![h.., ..]).to_owned(),
            ScrnForm::Code => q.slice(s![h.., ..]).to_owned(),
        };
        let mut dh = r.dot(&q.slice(s![..h, ..]));
        dh = dh + pm.dot(&ds);
        for (i, mut row) in dh.axis_iter_mut(Axis(0)).enumerate() {
            let hv = at.next[i];
            row.mapv_inplace(|v| v * hv * (F::one() - hv));
        }
        out.slice_mut(s![..h, ..]).assign(&dh);
        out
    }
}
