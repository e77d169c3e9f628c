//! CPU reference for WARP, generic over f32/f64: the scan, its backward, the
//! root network's decoding (and its backward), the hypernetwork for θ_0.

use super::{RootAct, Theta0, Warp};
use crate::cpu::view2;
use crate::models::input::SeqInput;
use crate::real::Real;
use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3, Axis};

/// τ_t = t/(T−1) (0 for a one-step sequence).
pub fn tau<F: Real>(t: usize, t_len: usize) -> F {
    if t_len > 1 {
        F::from_f64(t as f64 / (t_len - 1) as f64)
    } else {
        F::zero()
    }
}

fn act<F: Real>(a: RootAct, z: F) -> F {
    match a {
        RootAct::Relu => z.max(F::zero()),
        RootAct::Tanh => z.tanh(),
    }
}

/// The activation's derivative from its output.
fn act_grad<F: Real>(a: RootAct, y: F) -> F {
    match a {
        RootAct::Relu => {
            if y > F::zero() {
                F::one()
            } else {
                F::zero()
            }
        }
        RootAct::Tanh => F::one() - y * y,
    }
}

/// Dense inputs `(T, B, d)`; token ids become one-hot rows.
pub fn dense<F: Real>(x: &SeqInput<F>, width: usize) -> Array3<F> {
    match x {
        SeqInput::Dense(v) => v.to_owned(),
        SeqInput::Tokens { ids, t_len, batch } => {
            let mut out = Array3::zeros((*t_len, *batch, width));
            for (r, &id) in ids.iter().enumerate() {
                out[[r / batch, r % batch, id as usize]] = F::one();
            }
            out
        }
    }
}

/// The recurrence inputs `(T, B, d+1)`: `[x_t − x_{t-1}; τ_t − τ_{t-1}]`, zero at t = 0.
pub fn deltas<F: Real>(x: ArrayView3<F>) -> Array3<F> {
    let (t_len, batch, d) = x.dim();
    let mut out = Array3::zeros((t_len, batch, d + 1));
    for t in 1..t_len {
        let dt = tau::<F>(t, t_len) - tau::<F>(t - 1, t_len);
        for b in 0..batch {
            for c in 0..d {
                out[[t, b, c]] = x[[t, b, c]] - x[[t - 1, b, c]];
            }
            out[[t, b, d]] = dt;
        }
    }
    out
}

impl Warp {
    /// θ_0 of every row `(B, D)` and, for the hypernetwork, its hidden
    /// activations `(B, H)`.
    pub fn theta0_rows<F: Real>(&self, p: &[F], x0: ArrayView2<F>) -> (Array2<F>, Option<Array2<F>>) {
        let batch = x0.dim().0;
        match self.theta0 {
            Theta0::Learned => {
                let v = self.layout.get("theta0").expect("learned theta0");
                let t0 = ndarray::ArrayView1::from(&p[v.range()]);
                (t0.broadcast((batch, self.root.size)).expect("width").to_owned(), None)
            }
            Theta0::Hyper => {
                let w1 = view2(p, &self.layout, "hyper_w1");
                let b1 = ndarray::ArrayView1::from(&p[self.layout.get("hyper_b1").expect("b1").range()]);
                let z = (x0.dot(&w1.t()) + b1).mapv(|v| act(self.act, v));
                let w2 = view2(p, &self.layout, "hyper_w2");
                let b2 = ndarray::ArrayView1::from(&p[self.layout.get("hyper_b2").expect("b2").range()]);
                (z.dot(&w2.t()) + b2, Some(z))
            }
        }
    }

    /// States `(T + 1, B, D)`: slot 0 θ_0, slot t+1 the weights after x_t.
    /// `_h0` is not read: WARP starts every sequence from its own θ_0.
    pub fn forward<F: Real>(&self, p: &[F], x: &SeqInput<F>, _h0: ArrayView2<F>) -> Array3<F> {
        let x = dense(x, self.dims.input);
        let (t_len, batch, _) = x.dim();
        let d = self.root.size;
        let a = view2(p, &self.layout, "A");
        let bm = view2(p, &self.layout, "B");
        let dx = deltas(x.view());
        let mut st = Array3::zeros((t_len + 1, batch, d));
        if t_len == 0 {
            return st;
        }
        st.slice_mut(s![0, .., ..]).assign(&self.theta0_rows(p, x.slice(s![0, .., ..])).0);
        let one = F::one();
        for t in 0..t_len {
            let (prev, mut next) = st.multi_slice_mut((s![t, .., ..], s![t + 1, .., ..]));
            general_mat_mul(one, &prev, &a.t(), F::zero(), &mut next);
            general_mat_mul(one, &dx.slice(s![t, .., ..]), &bm.t(), one, &mut next);
        }
        st
    }

    /// From dL/d(states 1..=T) add the gradients of A, B and θ_0 (or the
    /// hypernetwork) into `grads`; returns zeros for the (unused) h0.
    pub fn backward<F: Real>(&self, p: &[F], x: &SeqInput<F>, states: ArrayView3<F>, d_states: ArrayView3<F>, grads: &mut [F]) -> Array2<F> {
        let x = dense(x, self.dims.input);
        let (t_len, batch, _) = x.dim();
        let d = self.root.size;
        let a = view2(p, &self.layout, "A");
        let dx = deltas(x.view());
        let one = F::one();
        let mut da = Array2::<F>::zeros((d, d));
        let mut db = Array2::<F>::zeros((d, self.dims.input + 1));
        let mut g = Array2::<F>::zeros((batch, d));
        let mut g_prev = Array2::<F>::zeros((batch, d));
        for t in (0..t_len).rev() {
            g.zip_mut_with(&d_states.slice(s![t, .., ..]), |a, &b| *a = *a + b);
            general_mat_mul(one, &g.t(), &states.slice(s![t, .., ..]), one, &mut da);
            general_mat_mul(one, &g.t(), &dx.slice(s![t, .., ..]), one, &mut db);
            general_mat_mul(one, &g, &a, F::zero(), &mut g_prev);
            std::mem::swap(&mut g, &mut g_prev);
        }
        add(grads, self.layout.offset("A"), da.iter());
        add(grads, self.layout.offset("B"), db.iter());
        if t_len > 0 {
            self.theta0_backward(p, x.slice(s![0, .., ..]), g.view(), grads);
        }
        Array2::zeros((batch, d))
    }

    /// Gradients of θ_0's parameters from dL/dθ_0 `(B, D)`.
    pub(super) fn theta0_backward<F: Real>(&self, p: &[F], x0: ArrayView2<F>, g: ArrayView2<F>, grads: &mut [F]) {
        match self.theta0 {
            Theta0::Learned => add(grads, self.layout.offset("theta0"), g.sum_axis(Axis(0)).iter()),
            Theta0::Hyper => {
                let (_, z) = self.theta0_rows(p, x0);
                let z = z.expect("hypernetwork activations");
                add(grads, self.layout.offset("hyper_w2"), g.t().dot(&z).iter());
                add(grads, self.layout.offset("hyper_b2"), g.sum_axis(Axis(0)).iter());
                let w2 = view2(p, &self.layout, "hyper_w2");
                let mut dz = g.dot(&w2);
                dz.zip_mut_with(&z, |d, &y| *d = *d * act_grad(self.act, y));
                add(grads, self.layout.offset("hyper_w1"), dz.t().dot(&x0).iter());
                add(grads, self.layout.offset("hyper_b1"), dz.sum_axis(Axis(0)).iter());
            }
        }
    }

    /// The root network of one row: outputs into `y`, hidden activations
    /// (all layers, concatenated) into `acts`. Layer 0 reads [τ; x] (x
    /// empty unless the root reads its input, `root_x`).
    pub(super) fn root_row<F: Real>(&self, theta: &[F], tau: F, x: &[F], acts: &mut [F], y: &mut [F]) {
        let layers = &self.root.layers;
        let mut off_in = 0;
        let mut off_out = 0;
        for (li, l) in layers.iter().enumerate() {
            let last = li + 1 == layers.len();
            for k in 0..l.out {
                let w = &theta[l.w + k * l.inp..l.w + (k + 1) * l.inp];
                let mut z = theta[l.b + k];
                if li == 0 {
                    z = z + w[0] * tau + w[1..].iter().zip(x).map(|(&a, &b)| a * b).sum::<F>();
                } else {
                    z = z + w.iter().zip(&acts[off_in..off_in + l.inp]).map(|(&a, &b)| a * b).sum::<F>();
                }
                if last {
                    y[k] = z;
                } else {
                    acts[off_out + k] = act(self.act, z);
                }
            }
            if li > 0 {
                off_in += l.inp;
            }
            off_out += if last { 0 } else { l.out };
        }
    }

    /// The root's extra input of row (t, b): x_t when it reads it.
    /// Written into `buf` (reused across rows, so no allocation per row).
    fn root_in<F: Real>(&self, x: Option<&ArrayView3<F>>, t: usize, b: usize, buf: &mut Vec<F>) {
        buf.clear();
        match (self.root_x, x) {
            (true, Some(x)) => buf.extend(x.slice(s![t, b, ..]).iter().copied()),
            (true, None) => panic!("WARP with --root-input-x decodes from its inputs: pass them"),
            (false, _) => {}
        }
    }

    /// Decoding: `y_t = root(τ_t; θ_t)` (or `root([τ_t; x_t]; θ_t)`) for
    /// every row, `(T·B, O)`.
    pub fn decode<F: Real>(&self, states: ArrayView3<F>, x: Option<ArrayView3<F>>) -> Array2<F> {
        let (t1, batch, _) = states.dim();
        let t_len = t1 - 1;
        let o = self.dims.output;
        let mut y = Array2::zeros((t_len * batch, o));
        let mut acts = vec![F::zero(); self.root.hidden_total()];
        let mut xin = Vec::new();
        for t in 0..t_len {
            for b in 0..batch {
                let theta = states.slice(s![t + 1, b, ..]);
                let theta = theta.as_slice().expect("contiguous state");
                let mut row = y.row_mut(t * batch + b);
                self.root_in(x.as_ref(), t, b, &mut xin);
                self.root_row(theta, tau(t, t_len), &xin, &mut acts, row.as_slice_mut().expect("row"));
            }
        }
        y
    }

    /// From dL/dy `(T·B, O)`: dL/d(states 1..=T) `(T, B, D)` through the root network.
    pub fn decode_backward<F: Real>(&self, states: ArrayView3<F>, x: Option<ArrayView3<F>>, dy: ArrayView2<F>) -> Array3<F> {
        let (t1, batch, d) = states.dim();
        let t_len = t1 - 1;
        let mut out = Array3::zeros((t_len, batch, d));
        let mut scratch = RootScratch::new(self);
        let (mut xin, mut dx) = (Vec::new(), Vec::new());
        for t in 0..t_len {
            let tau_t = tau::<F>(t, t_len);
            for b in 0..batch {
                let theta = states.slice(s![t + 1, b, ..]);
                let mut g = out.slice_mut(s![t, b, ..]);
                let dy_row = dy.row(t * batch + b);
                self.root_in(x.as_ref(), t, b, &mut xin);
                // dL/dx is not wanted here (the inputs are data)
                dx.clear();
                dx.resize(xin.len(), F::zero());
                self.root_row_backward(theta.as_slice().expect("row"), tau_t, &xin, dy_row.as_slice().expect("row"), g.as_slice_mut().expect("row"), &mut dx, &mut scratch);
            }
        }
        out
    }

    /// dL/dθ of one row into `g` (every entry written) from its dL/dy;
    /// dL/dx of the root's extra input added into `dx`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn root_row_backward<F: Real>(&self, theta: &[F], tau_t: F, x: &[F], dy: &[F], g: &mut [F], dx: &mut [F], sc: &mut RootScratch<F>) {
        let layers = &self.root.layers;
        let RootScratch { acts, y, dz, da } = sc;
        self.root_row(theta, tau_t, x, acts, y);
        let last = layers.len() - 1;
        dz[..layers[last].out].copy_from_slice(dy);
        // offset of this layer's input activations within `acts`
        let mut in_off = self.root.hidden_total();
        for li in (0..layers.len()).rev() {
            let l = layers[li];
            if li > 0 {
                in_off -= l.inp;
            }
            da[..l.inp].fill(F::zero());
            for k in 0..l.out {
                let dzk = dz[k];
                g[l.b + k] = dzk;
                for j in 0..l.inp {
                    let a_j = match (li, j) {
                        (0, 0) => tau_t,
                        (0, _) => x[j - 1],
                        _ => acts[in_off + j],
                    };
                    g[l.w + k * l.inp + j] = dzk * a_j;
                    da[j] = da[j] + theta[l.w + k * l.inp + j] * dzk;
                }
            }
            if li > 0 {
                for j in 0..l.inp {
                    dz[j] = da[j] * act_grad(self.act, acts[in_off + j]);
                }
            } else {
                for (d, &v) in dx.iter_mut().zip(&da[1..l.inp]) {
                    *d = *d + v;
                }
            }
        }
    }

    /// Tangent map: the recurrence is linear in θ, so J_t = A.
    pub fn tangent<F: Real>(&self, p: &[F], q: ArrayView2<F>) -> Array2<F> {
        view2(p, &self.layout, "A").dot(&q)
    }
}

/// Work space of one root-network row (forward activations, backward vectors).
pub(super) struct RootScratch<F> {
    acts: Vec<F>,
    y: Vec<F>,
    dz: Vec<F>,
    da: Vec<F>,
}

impl<F: Real> RootScratch<F> {
    pub(super) fn acts_mut(&mut self) -> &mut Vec<F> {
        &mut self.acts
    }

    pub(super) fn new(w: &Warp) -> Self {
        let width = w.root.layers.iter().map(|l| l.out.max(l.inp)).max().unwrap_or(1);
        RootScratch { acts: vec![F::zero(); w.root.hidden_total()], y: vec![F::zero(); w.root.layers.last().map_or(0, |l| l.out)], dz: vec![F::zero(); width], da: vec![F::zero(); width] }
    }
}

pub(super) fn add<'a, F: Real>(grads: &mut [F], off: usize, vals: impl Iterator<Item = &'a F>) {
    for (g, v) in grads[off..].iter_mut().zip(vals) {
        *g = *g + *v;
    }
}

impl Warp {
    /// Forecast `horizon` rows after a look-back `context` `(L, B, d)`, each
    /// prediction fed back as the next input (no gradient: this is how a
    /// trained WARP adapts to a new series). τ_t = t/(window − 1) with
    /// `window` the inputs of a training sequence (L + H − 1 when trained on
    /// this horizon; τ passes 1 beyond it). Returns `(H, B, O)` (with a
    /// Gaussian head, the means are the first d outputs and are fed back).
    pub fn rollout<F: Real>(&self, p: &[F], context: ArrayView3<F>, horizon: usize, window: usize) -> Array3<F> {
        let (l, batch, c) = context.dim();
        let o = self.dims.output;
        assert!(l >= 1 && horizon >= 1 && c == self.dims.input && (o == c || o == 2 * c), "rollout needs a look-back, a horizon and outputs that predict the inputs");
        let t_total = l + horizon - 1;
        let tau = |t: usize| tau::<F>(t, window);
        let a = view2(p, &self.layout, "A");
        let bm = view2(p, &self.layout, "B");
        let one = F::one();
        let mut theta = self.theta0_rows(p, context.slice(s![0, .., ..])).0;
        let mut next = Array2::zeros(theta.dim());
        let mut delta = Array2::<F>::zeros((batch, c + 1));
        let mut prev = context.slice(s![0, .., ..]).to_owned();
        let mut pred = Array2::<F>::zeros((batch, o));
        let mut out = Array3::zeros((horizon, batch, o));
        let mut sc = RootScratch::new(self);
        let mut raw = vec![F::zero(); self.root.layers.last().expect("a layer").out];
        for t in 0..t_total {
            let u = if t < l { context.slice(s![t, .., ..]).to_owned() } else { pred.slice(s![.., ..c]).to_owned() };
            if t > 0 {
                delta.slice_mut(s![.., ..c]).assign(&(&u - &prev));
                delta.column_mut(c).fill(tau(t) - tau(t - 1));
            }
            general_mat_mul(one, &theta, &a.t(), F::zero(), &mut next);
            general_mat_mul(one, &delta, &bm.t(), one, &mut next);
            std::mem::swap(&mut theta, &mut next);
            if t + 1 >= l {
                for b in 0..batch {
                    let row = theta.row(b);
                    let ub = u.row(b);
                    let mut y = pred.row_mut(b);
                    self.decode_row(row.as_slice().expect("row"), tau(t), ub.as_slice().expect("row"), &mut raw, &mut sc, y.as_slice_mut().expect("row"));
                }
                out.slice_mut(s![t + 1 - l, .., ..]).assign(&pred);
            }
            prev = u;
        }
        out
    }
}
