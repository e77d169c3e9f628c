//! CPU reference for the uRNN, generic over f32/f64: the unitary product as
//! its seven factors, each with its exact adjoint, and modReLU.
//!
//! Gradients of a real loss with respect to a complex vector are written as
//! complex vectors `x̄ = ∂L/∂Re x + i ∂L/∂Im x`; through a complex-linear map
//! `y = A x` they go back as `x̄ = A^H ȳ`.

use super::{cdot, fft_with, twiddles, CVec, Urnn, MODRELU_EPS};
use crate::models::input::{project, project_backward, SeqInput};
use crate::models::StepAt;
use crate::real::Real;
use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3, Axis};

/// W's factors read out of the parameters once per call.
struct Unitary<'a, F> {
    /// (cos θ, sin θ) of D1, D2, D3
    d: [(Vec<F>, Vec<F>); 3],
    v: [CVec<F>; 2],
    /// ‖v‖² of each reflection
    vn: [F; 2],
    perm: &'a [usize],
    tw: (Vec<F>, Vec<F>),
}

/// The intermediate vectors of one product W h that the adjoint needs.
struct Trace<F> {
    /// D1 h
    y1: CVec<F>,
    /// F D1 h: R1's input
    x_r1: CVec<F>,
    /// D2 Π R1 F D1 h
    y5: CVec<F>,
    /// F⁻¹ y5: R2's input
    x_r2: CVec<F>,
    /// W h
    y8: CVec<F>,
}

fn diag<F: Real>(d: &(Vec<F>, Vec<F>), x: &mut CVec<F>) {
    for k in 0..x.len() {
        let (c, s) = (d.0[k], d.1[k]);
        let (r, i) = (x.re[k], x.im[k]);
        x.re[k] = c * r - s * i;
        x.im[k] = s * r + c * i;
    }
}

/// x̄ = conj(D) ȳ, and dθ_k += Im(ȳ_k conj(y_k)) for the output y = D x.
fn diag_back<F: Real>(d: &(Vec<F>, Vec<F>), y: &CVec<F>, g: &mut CVec<F>, dtheta: &mut [F]) {
    for (k, dt) in dtheta.iter_mut().enumerate().take(g.len()) {
        let (c, s) = (d.0[k], d.1[k]);
        let (gr, gi) = (g.re[k], g.im[k]);
        *dt = *dt + gi * y.re[k] - gr * y.im[k];
        g.re[k] = c * gr + s * gi;
        g.im[k] = c * gi - s * gr;
    }
}

/// x − 2 v (v^H x) / ‖v‖²
fn reflect<F: Real>(v: &CVec<F>, vn: F, x: &mut CVec<F>) {
    let (sr, si) = cdot(v, x);
    let two = F::from_f64(2.0) / vn;
    for k in 0..x.len() {
        let (vr, vi) = (v.re[k], v.im[k]);
        x.re[k] = x.re[k] - two * (vr * sr - vi * si);
        x.im[k] = x.im[k] - two * (vr * si + vi * sr);
    }
}

/// Adjoint of y = R x for the input x: ȳ becomes x̄ = R ȳ, and
/// v̄ += −(2/n)(conj(s) ȳ + a x) + (4/n²) Re(a s) v with s = v^H x, a = ȳ^H v.
fn reflect_back<F: Real>(v: &CVec<F>, vn: F, x: &CVec<F>, g: &mut CVec<F>, dv_re: &mut [F], dv_im: &mut [F]) {
    let (sr, si) = cdot(v, x);
    let (ar, ai) = cdot(g, v);
    let two = F::from_f64(2.0) / vn;
    let four = F::from_f64(4.0) / (vn * vn) * (ar * sr - ai * si);
    for k in 0..x.len() {
        let (gr, gi) = (g.re[k], g.im[k]);
        // conj(s) ȳ + a x
        let tr = sr * gr + si * gi + ar * x.re[k] - ai * x.im[k];
        let ti = sr * gi - si * gr + ar * x.im[k] + ai * x.re[k];
        dv_re[k] = dv_re[k] - two * tr + four * v.re[k];
        dv_im[k] = dv_im[k] - two * ti + four * v.im[k];
    }
    // x̄ = ȳ − (2/n) v conj(a)
    for k in 0..x.len() {
        let (vr, vi) = (v.re[k], v.im[k]);
        g.re[k] = g.re[k] - two * (vr * ar + vi * ai);
        g.im[k] = g.im[k] - two * (vi * ar - vr * ai);
    }
}

impl<'a, F: Real> Unitary<'a, F> {
    fn new(m: &'a Urnn, p: &[F]) -> Self {
        let n = m.dims.hidden;
        let th = &p[m.layout.get("theta").expect("theta").range()];
        let d = |j: usize| {
            let t = &th[j * n..(j + 1) * n];
            (t.iter().map(|v| v.cos()).collect(), t.iter().map(|v| v.sin()).collect())
        };
        let rf = &p[m.layout.get("refl").expect("refl").range()];
        let v = |j: usize| CVec::from_stacked(&rf[j * 2 * n..(j + 1) * 2 * n]);
        let v = [v(0), v(1)];
        let vn = [v[0].norm_sq(), v[1].norm_sq()];
        Unitary { d: [d(0), d(1), d(2)], v, vn, perm: &m.perm, tw: twiddles(n) }
    }

    fn permute(&self, x: &CVec<F>) -> CVec<F> {
        CVec { re: self.perm.iter().map(|&j| x.re[j]).collect(), im: self.perm.iter().map(|&j| x.im[j]).collect() }
    }

    /// W h, keeping what the adjoint needs.
    fn apply(&self, h: &CVec<F>) -> Trace<F> {
        let mut x = h.clone();
        diag(&self.d[0], &mut x);
        let y1 = x.clone();
        fft_with(&mut x, false, &self.tw);
        let x_r1 = x.clone();
        reflect(&self.v[0], self.vn[0], &mut x);
        let mut x = self.permute(&x);
        diag(&self.d[1], &mut x);
        let y5 = x.clone();
        fft_with(&mut x, true, &self.tw);
        let x_r2 = x.clone();
        reflect(&self.v[1], self.vn[1], &mut x);
        diag(&self.d[2], &mut x);
        Trace { y1, x_r1, y5, x_r2, y8: x }
    }

    /// From ū = dL/d(W h): h̄ = W^H ū, adding into the θ (3N) and
    /// reflection (4N, as the `refl` layout) gradients.
    fn back(&self, tr: &Trace<F>, mut g: CVec<F>, dtheta: &mut [F], drefl: &mut [F]) -> CVec<F> {
        let n = g.len();
        diag_back(&self.d[2], &tr.y8, &mut g, &mut dtheta[2 * n..3 * n]);
        let (d1, d2) = drefl.split_at_mut(2 * n);
        let (re, im) = d2.split_at_mut(n);
        reflect_back(&self.v[1], self.vn[1], &tr.x_r2, &mut g, re, im);
        fft_with(&mut g, false, &self.tw);
        diag_back(&self.d[1], &tr.y5, &mut g, &mut dtheta[n..2 * n]);
        let mut back = CVec::zeros(n);
        for (j, &pj) in self.perm.iter().enumerate() {
            back.re[pj] = g.re[j];
            back.im[pj] = g.im[j];
        }
        let mut g = back;
        let (re, im) = d1.split_at_mut(n);
        reflect_back(&self.v[0], self.vn[0], &tr.x_r1, &mut g, re, im);
        fft_with(&mut g, true, &self.tw);
        diag_back(&self.d[0], &tr.y1, &mut g, &mut dtheta[..n]);
        g
    }
}

/// Threads for `rows` independent rows of `work` steps·units each: one
/// unless there is enough work to pay for spawning them.
fn threads(rows: usize, work: usize) -> usize {
    if rows * work < 1 << 14 {
        return 1;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(rows).max(1)
}

/// modReLU of one unit: the scale c with h = c z, from |z| = r.
fn modrelu_scale<F: Real>(r: F, b: F) -> F {
    let g = r + b;
    if g > F::zero() {
        g / (r + F::from_f64(MODRELU_EPS))
    } else {
        F::zero()
    }
}

impl Urnn {
    fn b_mod<F: Real>(&self, p: &[F]) -> Vec<F> {
        match self.layout.get("b_mod") {
            Ok(v) => p[v.range()].to_vec(),
            Err(_) => vec![F::zero(); self.dims.hidden],
        }
    }

    /// The learned initial state `[re; im]`.
    pub fn h0<'p, F>(&self, p: &'p [F]) -> &'p [F] {
        &p[self.layout.get("h0").expect("h0").range()]
    }

    /// z = W h_prev + pre for one row.
    fn preact<F: Real>(&self, u: &Unitary<F>, prev: &[F], pre: &[F]) -> (Trace<F>, CVec<F>) {
        let n = self.dims.hidden;
        let tr = u.apply(&CVec::from_stacked(prev));
        let mut z = tr.y8.clone();
        for k in 0..n {
            z.re[k] = z.re[k] + pre[k];
            z.im[k] = z.im[k] + pre[n + k];
        }
        (tr, z)
    }

    pub fn forward<F: Real>(&self, p: &[F], x: &SeqInput<F>, h0: ArrayView2<F>) -> Array3<F> {
        let (t_len, batch) = (x.t_len(), x.batch());
        let n = self.dims.hidden;
        let pre = project(p, &self.layout, x);
        let u = Unitary::new(self, p);
        let bm = self.b_mod(p);
        let mut st = Array3::zeros((t_len + 1, batch, 2 * n));
        st.slice_mut(s![0, .., ..]).assign(&h0);
        // rows are independent: each thread runs a block of them over all steps
        let rows_per = batch.div_ceil(threads(batch, t_len * n));
        std::thread::scope(|sc| {
            for (c, mut block) in st.axis_chunks_iter_mut(Axis(1), rows_per).enumerate() {
                let (u, bm, pre) = (&u, &bm, &pre);
                sc.spawn(move || {
                    for bb in 0..block.dim().1 {
                        let b = c * rows_per + bb;
                        for t in 0..t_len {
                            let prev = block.slice(s![t, bb, ..]).to_vec();
                            let (_, z) = self.preact(u, &prev, pre.row(t * batch + b).as_slice().expect("row-major"));
                            let mut out = block.slice_mut(s![t + 1, bb, ..]);
                            for k in 0..n {
                                let c = modrelu_scale((z.re[k] * z.re[k] + z.im[k] * z.im[k]).sqrt(), bm[k]);
                                out[k] = c * z.re[k];
                                out[n + k] = c * z.im[k];
                            }
                        }
                    }
                });
            }
        });
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
        let n = self.dims.hidden;
        let pre = project(p, &self.layout, x);
        let u = Unitary::new(self, p);
        let bm = self.b_mod(p);
        let mut d_pre = Array3::<F>::zeros((t_len, batch, 2 * n));
        let mut d0 = Array2::zeros((batch, 2 * n));
        let rows_per = batch.div_ceil(threads(batch, t_len * n));
        // each block of rows sums its own (dθ, dv, db); the blocks are added in order
        let parts: Vec<[Vec<F>; 3]> = std::thread::scope(|sc| {
            let handles: Vec<_> = d_pre
                .axis_chunks_iter_mut(Axis(1), rows_per)
                .zip(d0.axis_chunks_iter_mut(Axis(0), rows_per))
                .enumerate()
                .map(|(c, (mut dp, mut d0))| {
                    let (u, bm, pre) = (&u, &bm, &pre);
                    sc.spawn(move || {
                        let mut acc = [vec![F::zero(); 3 * n], vec![F::zero(); 4 * n], vec![F::zero(); n]];
                        for bb in 0..dp.dim().1 {
                            let b = c * rows_per + bb;
                            let carry = self.backward_row(u, bm, pre, states, d_states, b, dp.slice_mut(s![.., bb, ..]), &mut acc);
                            carry.write_stacked(d0.row_mut(bb).as_slice_mut().expect("row-major"));
                        }
                        acc
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("uRNN backward thread")).collect()
        });
        for (name, i) in [("theta", 0), ("refl", 1), ("b_mod", 2)] {
            if let Ok(v) = self.layout.get(name) {
                for part in &parts {
                    for (g, d) in grads[v.range()].iter_mut().zip(&part[i]) {
                        *g = *g + *d;
                    }
                }
            }
        }
        let d_pre = d_pre.into_shape_with_order((t_len * batch, 2 * n)).expect("contiguous");
        project_backward(&self.layout, x, d_pre.view(), grads);
        d0
    }

    /// Backward through time for batch row `b`: writes dL/dz of every step
    /// into `d_pre` (T, 2N), adds into acc = [dθ, dv, db], returns dL/dh0.
    #[allow(clippy::too_many_arguments)]
    fn backward_row<F: Real>(
        &self,
        u: &Unitary<F>,
        bm: &[F],
        pre: &Array2<F>,
        states: ArrayView3<F>,
        d_states: ArrayView3<F>,
        b: usize,
        mut d_pre: ndarray::ArrayViewMut2<F>,
        acc: &mut [Vec<F>; 3],
    ) -> CVec<F> {
        let (t_len, batch, _) = d_states.dim();
        let n = self.dims.hidden;
        let eps = F::from_f64(MODRELU_EPS);
        let [dtheta, drefl, db] = acc;
        // dL/dh_t carried back from step t + 1
        let mut carry = CVec::<F>::zeros(n);
        for t in (0..t_len).rev() {
            let prev = states.slice(s![t, b, ..]).to_vec();
            let (tr, z) = self.preact(u, &prev, pre.row(t * batch + b).as_slice().expect("row-major"));
            let mut g = CVec::zeros(n);
            for k in 0..n {
                let (hr, hi) = (d_states[[t, b, k]] + carry.re[k], d_states[[t, b, n + k]] + carry.im[k]);
                let (zr, zi) = (z.re[k], z.im[k]);
                let rad = (zr * zr + zi * zi).sqrt();
                let c = modrelu_scale(rad, bm[k]);
                if c == F::zero() {
                    continue;
                }
                let q = hr * zr + hi * zi;
                db[k] = db[k] + q / (rad + eps);
                let e = if rad > F::zero() { q * (eps - bm[k]) / ((rad + eps) * (rad + eps) * rad) } else { F::zero() };
                g.re[k] = c * hr + e * zr;
                g.im[k] = c * hi + e * zi;
            }
            let mut row = d_pre.row_mut(t);
            for k in 0..n {
                row[k] = g.re[k];
                row[n + k] = g.im[k];
            }
            carry = u.back(&tr, g, dtheta, drefl);
        }
        carry
    }

    /// J_t Q: δz = W δh (complex-linear), then modReLU's real 2×2 Jacobian
    /// per unit: δh = c δz + z (ε − b) Re(conj(z) δz) / ((r + ε)² r).
    pub fn tangent<F: Real>(&self, p: &[F], at: &StepAt<F>, q: ArrayView2<F>) -> Array2<F> {
        let n = self.dims.hidden;
        let eps = F::from_f64(MODRELU_EPS);
        let u = Unitary::new(self, p);
        let bm = self.b_mod(p);
        let (_, z) = self.preact(&u, at.prev, at.pre);
        let mut out = Array2::zeros(q.dim());
        for col in 0..q.dim().1 {
            let dz = u.apply(&CVec::from_stacked(&q.column(col).to_vec())).y8;
            for k in 0..n {
                let (zr, zi) = (z.re[k], z.im[k]);
                let rad = (zr * zr + zi * zi).sqrt();
                let c = modrelu_scale(rad, bm[k]);
                if c == F::zero() {
                    continue;
                }
                let e = if rad > F::zero() { (eps - bm[k]) * (zr * dz.re[k] + zi * dz.im[k]) / ((rad + eps) * (rad + eps) * rad) } else { F::zero() };
                out[[k, col]] = c * dz.re[k] + e * zr;
                out[[n + k, col]] = c * dz.im[k] + e * zi;
            }
        }
        out
    }

    /// W v for a stacked `[re; im]` vector (the unitarity check).
    pub fn apply_recurrence<F: Real>(&self, p: &[F], v: &[F]) -> Vec<F> {
        let u = Unitary::new(self, p);
        let y = u.apply(&CVec::from_stacked(v)).y8;
        let mut out = vec![F::zero(); v.len()];
        y.write_stacked(&mut out);
        out
    }
}
