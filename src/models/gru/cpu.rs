//! CPU reference for the GRU, generic over f32/f64.

use super::Gru;
use crate::cpu::view2;
use crate::models::input::{project, project_backward, SeqInput};
use crate::models::lstm::cpu::sigmoid;
use crate::models::StepAt;
use crate::real::Real;
use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3};

/// One step's gate values for a row: r, z, n and u_n + b_hn.
#[derive(Clone, Copy)]
struct Gates<F> {
    r: F,
    z: F,
    n: F,
    hn: F,
}

impl Gru {
    /// b_hn, or zeros without biases (looked up once per call: the layout
    /// lookup is a search by name).
    fn b_hn<F: Real>(&self, p: &[F]) -> Vec<F> {
        match self.layout.get("b_hn") {
            Ok(v) => p[v.range()].to_vec(),
            Err(_) => vec![F::zero(); self.dims.hidden],
        }
    }

    /// Gates of unit i from the pre-activations (pre, 3H), u = w_rec h_{t-1} (3H) and b_hn.
    fn gates_at<F: Real>(&self, b_hn: &[F], pre: &[F], u: &[F], i: usize) -> Gates<F> {
        let h = self.dims.hidden;
        let r = sigmoid(pre[i] + u[i]);
        let z = sigmoid(pre[h + i] + u[h + i]);
        let hn = u[2 * h + i] + b_hn[i];
        let n = (pre[2 * h + i] + r * hn).tanh();
        Gates { r, z, n, hn }
    }

    pub fn forward<F: Real>(&self, p: &[F], x: &SeqInput<F>, h0: ArrayView2<F>) -> Array3<F> {
        let (t_len, batch) = (x.t_len(), x.batch());
        let h = self.dims.hidden;
        let pre = project(p, &self.layout, x);
        let w = view2(p, &self.layout, "w_rec");
        let b_hn = self.b_hn(p);
        let mut st = Array3::zeros((t_len + 1, batch, h));
        st.slice_mut(s![0, .., ..]).assign(&h0);
        let mut u = Array2::zeros((batch, 3 * h));
        for t in 0..t_len {
            general_mat_mul(F::one(), &st.slice(s![t, .., ..]), &w.t(), F::zero(), &mut u);
            for b in 0..batch {
                let pr = pre.row(t * batch + b);
                let pr = pr.as_slice().expect("row-major");
                let ur = u.row(b);
                let ur = ur.as_slice().expect("row-major");
                for i in 0..h {
                    let g = self.gates_at(&b_hn, pr, ur, i);
                    st[[t + 1, b, i]] = (F::one() - g.z) * g.n + g.z * st[[t, b, i]];
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
        let rows = t_len * batch;
        let w = view2(p, &self.layout, "w_rec");
        let pre = project(p, &self.layout, x);
        let prev = states.slice(s![..t_len, .., ..]);
        let prev = prev.to_shape((rows, h)).expect("states");
        let u_all = prev.dot(&w.t());
        let b_hn = self.b_hn(p);
        let one = F::one();
        // d_pre (rows, 3H) and du (rows, 3H): they differ in the n block
        let mut d_pre = Array2::<F>::zeros((rows, 3 * h));
        let mut du = Array2::<F>::zeros((rows, 3 * h));
        let mut carry = Array2::<F>::zeros((batch, h));
        for t in (0..t_len).rev() {
            let mut direct = Array2::<F>::zeros((batch, h));
            for b in 0..batch {
                let r_ = t * batch + b;
                let pr = pre.row(r_);
                let pr = pr.as_slice().expect("row-major");
                let ur = u_all.row(r_);
                let ur = ur.as_slice().expect("row-major");
                for i in 0..h {
                    let g = self.gates_at(&b_hn, pr, ur, i);
                    let dh = d_states[[t, b, i]] + carry[[b, i]];
                    let dn = dh * (one - g.z);
                    let dz = dh * (states[[t, b, i]] - g.n);
                    let dan = dn * (one - g.n * g.n);
                    let dar = dan * g.hn * g.r * (one - g.r);
                    let daz = dz * g.z * (one - g.z);
                    d_pre[[r_, i]] = dar;
                    d_pre[[r_, h + i]] = daz;
                    d_pre[[r_, 2 * h + i]] = dan;
                    du[[r_, i]] = dar;
                    du[[r_, h + i]] = daz;
                    du[[r_, 2 * h + i]] = dan * g.r;
                    direct[[b, i]] = dh * g.z;
                }
            }
            let du_t = du.slice(s![t * batch..(t + 1) * batch, ..]);
            general_mat_mul(one, &du_t, &w, F::zero(), &mut carry);
            carry.zip_mut_with(&direct, |c, &d| *c = *c + d);
        }
        let dw = du.t().dot(&prev);
        let o = self.layout.offset("w_rec");
        for (g, v) in grads[o..o + dw.len()].iter_mut().zip(dw.iter()) {
            *g = *g + *v;
        }
        if let Ok(v) = self.layout.get("b_hn") {
            let db = du.slice(s![.., 2 * h..]).sum_axis(ndarray::Axis(0));
            for (g, d) in grads[v.range()].iter_mut().zip(db.iter()) {
                *g = *g + *d;
            }
        }
        project_backward(&self.layout, x, d_pre.view(), grads);
        carry
    }

    /// J_t Q: with du = w_rec dh, dr = r(1−r) du_r, dz = z(1−z) du_z,
    /// dn = (1 − n²)(r du_n + (u_n + b_hn) dr), dh' = (h_{t-1} − n) dz + (1 − z) dn + z dh.
    pub fn tangent<F: Real>(&self, p: &[F], at: &StepAt<F>, q: ArrayView2<F>) -> Array2<F> {
        let h = self.dims.hidden;
        let w = view2(p, &self.layout, "w_rec");
        let u = w.dot(&ndarray::ArrayView1::from(at.prev));
        let u = u.as_slice().expect("contiguous");
        let du = w.dot(&q);
        let b_hn = self.b_hn(p);
        let k = q.dim().1;
        let one = F::one();
        let mut out = Array2::zeros((h, k));
        for i in 0..h {
            let g = self.gates_at(&b_hn, at.pre, u, i);
            for c in 0..k {
                let dr = g.r * (one - g.r) * du[[i, c]];
                let dz = g.z * (one - g.z) * du[[h + i, c]];
                let dn = (one - g.n * g.n) * (g.r * du[[2 * h + i, c]] + g.hn * dr);
                out[[i, c]] = (at.prev[i] - g.n) * dz + (one - g.z) * dn + g.z * q[[i, c]];
            }
        }
        out
    }
}
