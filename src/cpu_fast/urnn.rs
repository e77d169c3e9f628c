//! The uRNN's recurrence on the fast CPU path (see `models::urnn::cpu` for
//! the reference it matches, factor by factor).
//!
//! What makes it faster than the reference: the FFT runs its first two
//! stages as one radix-4 pass and every later one as a straight
//! vectorisable loop over a contiguous twiddle table (the reference walks
//! the butterflies with a stride); dot products keep sixteen running sums;
//! no vector is allocated per step; and the forward pass keeps each step's
//! two FFT outputs (R1's and R2's inputs) so the backward pass rebuilds
//! every other intermediate with O(N) work instead of running the forward
//! FFTs again. Past a memory cap it recomputes them as the reference does.
//! The carried gradient is kept out of f32's slow subnormal range
//! (`flush_tiny`).

use super::{per_chunk, Forward, SharedRows};
use crate::models::input::{project, project_into, SeqInput};
use crate::models::urnn::{Urnn, MODRELU_EPS};
use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Largest trace (the two FFT outputs of every step and row) the forward
/// pass keeps, in bytes; a larger one is recomputed in the backward pass.
static TRACE_CAP_BYTES: AtomicUsize = AtomicUsize::new(1 << 30);

/// Sets the largest trace the uRNN's forward pass keeps for the backward
/// pass (default 1 GiB; 0 makes the backward pass recompute it always, as
/// the tests do to cover that path). Returns the previous cap.
pub fn set_urnn_trace_cap(bytes: usize) -> usize {
    TRACE_CAP_BYTES.swap(bytes, Ordering::Relaxed)
}

/// The unitary factors and FFT tables, read out of the parameters once per call.
struct Plan {
    n: usize,
    /// cos θ, sin θ of D1, D2, D3
    cos: [Vec<f32>; 3],
    sin: [Vec<f32>; 3],
    /// the reflection vectors' parts and ‖v‖²
    vr: [Vec<f32>; 2],
    vi: [Vec<f32>; 2],
    vn: [f32; 2],
    perm: Vec<usize>,
    /// the (i, j > i) pairs the bit-reversal permutation swaps
    swaps: Vec<(usize, usize)>,
    /// per stage of half-length h = 2, 4, …, N/2: e^{−iπj/h} for j < h
    tw_re: Vec<Vec<f32>>,
    tw_im: Vec<Vec<f32>>,
    /// the same with the imaginary parts negated (the inverse transform)
    tw_im_inv: Vec<Vec<f32>>,
    scale: f32,
    bm: Vec<f32>,
}

impl Plan {
    fn new(m: &Urnn, p: &[f32]) -> Self {
        let n = m.dims.hidden;
        let th = &p[m.layout.get("theta").expect("theta").range()];
        let rf = &p[m.layout.get("refl").expect("refl").range()];
        let part = |j: usize, f: fn(f32) -> f32| th[j * n..(j + 1) * n].iter().map(|&v| f(v)).collect::<Vec<_>>();
        let vr = [rf[..n].to_vec(), rf[2 * n..3 * n].to_vec()];
        let vi = [rf[n..2 * n].to_vec(), rf[3 * n..].to_vec()];
        let norm = |j: usize| vr[j].iter().zip(&vi[j]).fold(0f32, |a, (&r, &i)| a + r * r + i * i);
        let bits = n.trailing_zeros();
        let swaps = (0..n)
            .filter_map(|i| {
                let j = if bits == 0 { i } else { i.reverse_bits() >> (usize::BITS - bits) };
                (j > i).then_some((i, j))
            })
            .collect();
        let (mut tw_re, mut tw_im) = (Vec::new(), Vec::new());
        let mut h = 2;
        while h < n {
            let ang = |j: usize| -std::f64::consts::PI * j as f64 / h as f64;
            // cos(π/2) is 6e-17 in floating point, not 0: snapped to 0 so a
            // tiny gradient times it cannot make a subnormal (see flush_tiny)
            let snap = |v: f64| if v.abs() < 1e-9 { 0.0 } else { v as f32 };
            tw_re.push((0..h).map(|j| snap(ang(j).cos())).collect());
            tw_im.push((0..h).map(|j| snap(ang(j).sin())).collect::<Vec<f32>>());
            h *= 2;
        }
        let tw_im_inv = tw_im.iter().map(|t| t.iter().map(|v| -v).collect()).collect();
        let bm = match m.layout.get("b_mod") {
            Ok(v) => p[v.range()].to_vec(),
            Err(_) => vec![0f32; n],
        };
        Plan {
            n,
            cos: [part(0, f32::cos), part(1, f32::cos), part(2, f32::cos)],
            sin: [part(0, f32::sin), part(1, f32::sin), part(2, f32::sin)],
            vn: [norm(0), norm(1)],
            vr,
            vi,
            perm: m.perm.clone(),
            swaps,
            tw_re,
            tw_im,
            tw_im_inv,
            scale: (1.0 / (n as f64).sqrt()) as f32,
            bm,
        }
    }

    /// In-place unitary FFT (the reference's `fft_with`), its inverse when
    /// `inverse`: bit reversal, then the first two stages as one radix-4
    /// pass with the 1/√N scale folded in, then one contiguous loop per
    /// later stage.
    #[inline(always)]
    fn fft(&self, re: &mut [f32], im: &mut [f32], inverse: bool) {
        let n = self.n;
        let (re, im) = (&mut re[..n], &mut im[..n]);
        for &(i, j) in &self.swaps {
            re.swap(i, j);
            im.swap(i, j);
        }
        let s = self.scale;
        if n == 2 {
            let (a, b) = (re[0], re[1]);
            (re[0], re[1]) = ((a + b) * s, (a - b) * s);
            let (a, b) = (im[0], im[1]);
            (im[0], im[1]) = ((a + b) * s, (a - b) * s);
            return;
        }
        if n < 4 {
            return;
        }
        // the first two stages as one radix-4 pass (their twiddles are ±1
        // and ∓i), with the 1/√N scale folded in
        let sign = if inverse { -s } else { s };
        for (cr, ci) in re.chunks_exact_mut(4).zip(im.chunks_exact_mut(4)) {
            let (a0r, a1r, a2r, a3r) = (cr[0] + cr[1], cr[0] - cr[1], cr[2] + cr[3], cr[2] - cr[3]);
            let (a0i, a1i, a2i, a3i) = (ci[0] + ci[1], ci[0] - ci[1], ci[2] + ci[3], ci[2] - ci[3]);
            // t = ∓i a3 (forward −i), scaled
            let (tr, ti) = (a3i * sign, -a3r * sign);
            cr[0] = (a0r + a2r) * s;
            ci[0] = (a0i + a2i) * s;
            cr[2] = (a0r - a2r) * s;
            ci[2] = (a0i - a2i) * s;
            cr[1] = a1r * s + tr;
            ci[1] = a1i * s + ti;
            cr[3] = a1r * s - tr;
            ci[3] = a1i * s - ti;
        }
        let tw_im = if inverse { &self.tw_im_inv } else { &self.tw_im };
        for (wr, wi) in self.tw_re.iter().zip(tw_im).skip(1) {
            let h = wr.len();
            for (cr, ci) in re.chunks_exact_mut(2 * h).zip(im.chunks_exact_mut(2 * h)) {
                let (ar, br) = cr.split_at_mut(h);
                let (ai, bi) = ci.split_at_mut(h);
                // zipped iterators: no bounds checks, so the loop vectorises
                let lanes = ar.iter_mut().zip(ai.iter_mut()).zip(br.iter_mut().zip(bi.iter_mut())).zip(wr.iter().zip(wi.iter()));
                for (((ar, ai), (br, bi)), (&wr, &wi)) in lanes {
                    let tr = *br * wr - *bi * wi;
                    let ti = *br * wi + *bi * wr;
                    *br = *ar - tr;
                    *bi = *ai - ti;
                    *ar += tr;
                    *ai += ti;
                }
            }
        }
    }

    /// The FFT of (xr, xi) written into (yr, yi), returned as slices.
    #[inline(always)]
    fn fft_into<'y>(&self, xr: &[f32], xi: &[f32], yr: &'y mut [f32], yi: &'y mut [f32], inverse: bool) -> (&'y [f32], &'y [f32]) {
        yr.copy_from_slice(xr);
        yi.copy_from_slice(xi);
        self.fft(yr, yi, inverse);
        (yr, yi)
    }

    /// y = D_j x
    #[inline(always)]
    fn diag(&self, j: usize, xr: &[f32], xi: &[f32], yr: &mut [f32], yi: &mut [f32]) {
        let n = self.n;
        let (c, s, xr, xi, yr, yi) = (&self.cos[j][..n], &self.sin[j][..n], &xr[..n], &xi[..n], &mut yr[..n], &mut yi[..n]);
        for k in 0..n {
            yr[k] = c[k] * xr[k] - s[k] * xi[k];
            yi[k] = s[k] * xr[k] + c[k] * xi[k];
        }
    }

    /// ḡ ← conj(D_j) ḡ, and dθ_k += Im(ḡ_k conj(y_k)) for D_j's output y.
    #[inline(always)]
    fn diag_back(&self, j: usize, yr: &[f32], yi: &[f32], gr: &mut [f32], gi: &mut [f32], dtheta: &mut [f32]) {
        let n = self.n;
        let (c, s, yr, yi, gr, gi, dt) = (&self.cos[j][..n], &self.sin[j][..n], &yr[..n], &yi[..n], &mut gr[..n], &mut gi[..n], &mut dtheta[..n]);
        for k in 0..n {
            let (a, b) = (gr[k], gi[k]);
            dt[k] += b * yr[k] - a * yi[k];
            gr[k] = c[k] * a + s[k] * b;
            gi[k] = c[k] * b - s[k] * a;
        }
    }

    /// x ← R_j x = x − 2 v (v^H x) / ‖v‖²
    #[inline(always)]
    fn reflect(&self, j: usize, xr: &mut [f32], xi: &mut [f32]) {
        let n = self.n;
        let (vr, vi, xr, xi) = (&self.vr[j][..n], &self.vi[j][..n], &mut xr[..n], &mut xi[..n]);
        let (sr, si) = cdot(vr, vi, xr, xi);
        let two = 2.0 / self.vn[j];
        for k in 0..n {
            xr[k] -= two * (vr[k] * sr - vi[k] * si);
            xi[k] -= two * (vr[k] * si + vi[k] * sr);
        }
    }

    /// The adjoint of R_j at input x (as the reference's `reflect_back`):
    /// ḡ ← R_j ḡ and dv += −(2/n)(conj(s) ḡ + a x) + (4/n²) Re(a s) v.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn reflect_back(&self, j: usize, xr: &[f32], xi: &[f32], gr: &mut [f32], gi: &mut [f32], dvr: &mut [f32], dvi: &mut [f32]) {
        let n = self.n;
        let (vr, vi, xr, xi, gr, gi, dvr, dvi) = (&self.vr[j][..n], &self.vi[j][..n], &xr[..n], &xi[..n], &mut gr[..n], &mut gi[..n], &mut dvr[..n], &mut dvi[..n]);
        let (sr, si) = cdot(vr, vi, xr, xi);
        let (ar, ai) = cdot(gr, gi, vr, vi);
        let two = 2.0 / self.vn[j];
        let four = 4.0 / (self.vn[j] * self.vn[j]) * (ar * sr - ai * si);
        for k in 0..n {
            let (a, b) = (gr[k], gi[k]);
            let tr = sr * a + si * b + ar * xr[k] - ai * xi[k];
            let ti = sr * b - si * a + ar * xi[k] + ai * xr[k];
            dvr[k] += -two * tr + four * vr[k];
            dvi[k] += -two * ti + four * vi[k];
            gr[k] = a - two * (vr[k] * ar + vi[k] * ai);
            gi[k] = b - two * (vi[k] * ar - vr[k] * ai);
        }
    }

    /// y = D2 Π x
    #[inline(always)]
    fn permute_diag2(&self, xr: &[f32], xi: &[f32], yr: &mut [f32], yi: &mut [f32]) {
        let n = self.n;
        let (c, s, yr, yi) = (&self.cos[1][..n], &self.sin[1][..n], &mut yr[..n], &mut yi[..n]);
        for (k, &j) in self.perm.iter().enumerate().take(n) {
            let (r, i) = (xr[j], xi[j]);
            yr[k] = c[k] * r - s[k] * i;
            yi[k] = s[k] * r + c[k] * i;
        }
    }
}

/// Σ conj(a_k) b_k in sixteen running sums per part (so the loop
/// vectorises), the lanes and the tail added at the end.
#[inline(always)]
fn cdot(ar: &[f32], ai: &[f32], br: &[f32], bi: &[f32]) -> (f32, f32) {
    const L: usize = 16;
    let (mut re, mut im) = ([0f32; L], [0f32; L]);
    let blocks = ar.chunks_exact(L).zip(ai.chunks_exact(L)).zip(br.chunks_exact(L).zip(bi.chunks_exact(L)));
    for ((ar, ai), (br, bi)) in blocks {
        for l in 0..L {
            re[l] += ar[l] * br[l] + ai[l] * bi[l];
            im[l] += ar[l] * bi[l] - ai[l] * br[l];
        }
    }
    let full = ar.len() / L * L;
    let (mut sr, mut si) = (0f32, 0f32);
    for k in full..ar.len() {
        sr += ar[k] * br[k] + ai[k] * bi[k];
        si += ar[k] * bi[k] - ai[k] * br[k];
    }
    (re.iter().sum::<f32>() + sr, im.iter().sum::<f32>() + si)
}

/// modReLU's backward for one row and step: from V x (`pre`), W h
/// (`wh`), dL/dh from above (`d`) and carried back (`carry`), writes
/// dL/dz into (gr, gi) and adds dL/db. Its own function so the compiler
/// knows the outputs alias nothing (and vectorises the loop).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn modrelu_back(bm: &[f32], pre: [&[f32]; 2], wh: [&[f32]; 2], d: [&[f32]; 2], carry: [&[f32]; 2], gr: &mut [f32], gi: &mut [f32], db: &mut [f32]) {
    let n = bm.len();
    let eps = MODRELU_EPS as f32;
    let (pr, pi, yr, yi, dr, di, cr, ci) = (&pre[0][..n], &pre[1][..n], &wh[0][..n], &wh[1][..n], &d[0][..n], &d[1][..n], &carry[0][..n], &carry[1][..n]);
    let (gr, gi, db) = (&mut gr[..n], &mut gi[..n], &mut db[..n]);
    for k in 0..n {
        let (hr, hi) = (dr[k] + cr[k], di[k] + ci[k]);
        let (zr, zi) = (yr[k] + pr[k], yi[k] + pi[k]);
        let rad = (zr * zr + zi * zi).sqrt();
        // every branch's value first, then selects: the loop vectorises
        let (gap, re) = (rad + bm[k], rad + eps);
        let on = gap > 0.0;
        let c = gap / re;
        let q = hr * zr + hi * zi;
        let dq = q / re;
        let e = q * (eps - bm[k]) / (re * re * rad);
        db[k] += if on { dq } else { 0.0 };
        let e = if rad > 0.0 { e } else { 0.0 };
        gr[k] = if on { c * hr + e * zr } else { 0.0 };
        gi[k] = if on { c * hi + e * zi } else { 0.0 };
    }
}

/// Below this a carried gradient is set to zero: 2^-70 ≈ 8.5e-22, under
/// anything that moves a weight next to the gradients of the later steps
/// (f32 sums keep ~7 digits), and far enough above f32's subnormals
/// (under 1.2e-38) that its products with the step's other factors stay
/// normal.
const TINY: f32 = 8.470_329_5e-22;

/// Zeroes the entries of a carried gradient under [`TINY`]. Through modReLU
/// dL/dh shrinks by a factor c < 1 per step back (|z| + b over |z| + ε); over
/// hundreds of steps it reaches f32's subnormal range, where x86 arithmetic
/// is ~100× slower: a T = 400 adding run fell from 8.5 to 2 steps/s when its
/// gradients got there. Flushed early, the chain stays in normal floats.
#[inline(always)]
fn flush_tiny(v: &mut [f32]) {
    for x in v.iter_mut() {
        *x = if x.abs() < TINY { 0.0 } else { *x };
    }
}

/// Per-thread work vectors, N each.
struct Scratch {
    v: Vec<Vec<f32>>,
}

impl Scratch {
    fn new(n: usize, count: usize) -> Self {
        Scratch { v: vec![vec![0f32; n]; count] }
    }
}

/// One step for one row: `out` holds V x_t on entry and h_t on exit;
/// `trace` (2 × 2N) gets R1's and R2's inputs when given.
#[inline(always)]
fn step_forward(pl: &Plan, prev: &[f32], out: &mut [f32], sc: &mut Scratch, trace: Option<&mut [f32]>) {
    let n = pl.n;
    let [xr, xi, yr, yi] = &mut sc.v[..] else { unreachable!("four scratch vectors") };
    pl.diag(0, &prev[..n], &prev[n..2 * n], xr, xi);
    pl.fft(xr, xi, false);
    let mut trace = trace;
    if let Some(tr) = trace.as_deref_mut() {
        tr[..n].copy_from_slice(xr);
        tr[n..2 * n].copy_from_slice(xi);
    }
    pl.reflect(0, xr, xi);
    pl.permute_diag2(xr, xi, yr, yi);
    pl.fft(yr, yi, true);
    if let Some(tr) = trace {
        tr[2 * n..3 * n].copy_from_slice(yr);
        tr[3 * n..4 * n].copy_from_slice(yi);
    }
    pl.reflect(1, yr, yi);
    pl.diag(2, yr, yi, xr, xi);
    let (or, oi) = out.split_at_mut(n);
    let (bm, xr, xi, or, oi) = (&pl.bm[..n], &xr[..n], &xi[..n], &mut or[..n], &mut oi[..n]);
    for k in 0..n {
        let (zr, zi) = (xr[k] + or[k], xi[k] + oi[k]);
        let rad = (zr * zr + zi * zi).sqrt();
        let (gap, c) = (rad + bm[k], (rad + bm[k]) / (rad + MODRELU_EPS as f32));
        let c = if gap > 0.0 { c } else { 0.0 };
        or[k] = c * zr;
        oi[k] = c * zi;
    }
}

/// The forward pass of rows b0..b1 over all steps.
#[inline(always)]
fn forward_rows(pl: &Plan, sp: SharedRows, tp: Option<SharedRows>, t_len: usize, batch: usize, b0: usize, b1: usize) {
    let w = 2 * pl.n;
    let mut sc = Scratch::new(pl.n, 4);
    for b in b0..b1 {
        for t in 0..t_len {
            // SAFETY: row b of slots t and t + 1 belongs to this worker
            let prev = unsafe { sp.slice((t * batch + b) * w, w) };
            let out = unsafe { sp.slice(((t + 1) * batch + b) * w, w) };
            let trace = tp.as_ref().map(|tp| unsafe { tp.slice((t * batch + b) * 2 * w, 2 * w) });
            step_forward(pl, prev, out, &mut sc, trace);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_rows_avx2(pl: &Plan, sp: SharedRows, tp: Option<SharedRows>, t_len: usize, batch: usize, b0: usize, b1: usize) {
    forward_rows(pl, sp, tp, t_len, batch, b0, b1)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn forward_rows_avx512(pl: &Plan, sp: SharedRows, tp: Option<SharedRows>, t_len: usize, batch: usize, b0: usize, b1: usize) {
    forward_rows(pl, sp, tp, t_len, batch, b0, b1)
}

/// The states from `h0`; with `keep`, also the trace the backward pass
/// reuses (when it fits under [`set_urnn_trace_cap`]'s cap).
pub(super) fn forward(m: &Urnn, p: &[f32], x: &SeqInput<f32>, h0: ArrayView2<f32>, keep: bool) -> Forward {
    let (t_len, batch, n) = (x.t_len(), x.batch(), m.dims.hidden);
    let w = 2 * n;
    let pl = Plan::new(m, p);
    let mut states = Array3::<f32>::zeros((t_len + 1, batch, w));
    states.slice_mut(s![0, .., ..]).assign(&h0);
    {
        // V x_t of every step, into slots 1..=T
        let mut rest = states.slice_mut(s![1.., .., ..]);
        let pre = rest.view_mut().into_shape_with_order((t_len * batch, w)).expect("contiguous states");
        project_into(p, &m.layout, x, pre);
    }
    let keep = keep && t_len * batch * 2 * w * 4 <= TRACE_CAP_BYTES.load(Ordering::Relaxed);
    let mut trace = keep.then(|| Array2::<f32>::zeros((t_len * batch, 2 * w)));
    let sp = SharedRows::new(states.as_slice_mut().expect("contiguous states"));
    let tp = trace.as_mut().map(|t| SharedRows::new(t.as_slice_mut().expect("contiguous trace")));
    let pl = &pl;
    per_chunk(batch, |b0, b1| {
        #[cfg(target_arch = "x86_64")]
        {
            let level = super::kernel::level();
            if level >= 2 {
                // SAFETY: level() checked avx512f (and the CPUs that have it have avx2 and fma)
                return unsafe { forward_rows_avx512(pl, sp, tp, t_len, batch, b0, b1) };
            }
            if level >= 1 {
                // SAFETY: level() checked avx2 and fma
                return unsafe { forward_rows_avx2(pl, sp, tp, t_len, batch, b0, b1) };
            }
        }
        forward_rows(pl, sp, tp, t_len, batch, b0, b1)
    });
    Forward { states, gates: trace.map(|t| (t, Array2::zeros((0, 0)))) }
}

/// What one worker's backward pass adds up: dθ (3N), dv (4N, as `refl`), db (N).
struct Acc {
    dtheta: Vec<f32>,
    drefl: Vec<f32>,
    db: Vec<f32>,
}

/// The inputs of one worker's backward pass.
struct BackIn<'a> {
    pl: &'a Plan,
    states: &'a [f32],
    trace: Option<&'a [f32]>,
    pre: &'a [f32],
    d_states: &'a [f32],
    t_len: usize,
    batch: usize,
}

/// Backward through time for rows b0..b1: dL/dz of every step into `dp`
/// (T·B, 2N), dL/dh0 into `d0p` (B, 2N); returns the summed parameter
/// gradients. Follows `Urnn::backward_row` of the reference.
#[inline(always)]
fn backward_rows(a: &BackIn, dp: SharedRows, d0p: SharedRows, b0: usize, b1: usize) -> Acc {
    let pl = a.pl;
    let n = pl.n;
    let w = 2 * n;
    let mut acc = Acc { dtheta: vec![0f32; 3 * n], drefl: vec![0f32; 4 * n], db: vec![0f32; n] };
    let mut sc = Scratch::new(n, 14);
    let [y1r, y1i, o1r, o1i, y5r, y5i, o2r, o2i, y8r, y8i, gr, gi, cr, ci] = &mut sc.v[..] else { unreachable!("fourteen scratch vectors") };
    let (dth, rest) = acc.dtheta.split_at_mut(n);
    let (dth2, dth3) = rest.split_at_mut(n);
    let (dv1, dv2) = acc.drefl.split_at_mut(2 * n);
    let (dv1r, dv1i) = dv1.split_at_mut(n);
    let (dv2r, dv2i) = dv2.split_at_mut(n);
    let (db, bm) = (&mut acc.db[..n], &pl.bm[..n]);
    for b in b0..b1 {
        cr.fill(0.0);
        ci.fill(0.0);
        for t in (0..a.t_len).rev() {
            let row = (t * a.batch + b) * w;
            let prev = &a.states[row..row + w];
            // rebuild D1 h, R1's input, D2's output, R2's input and D3's output
            pl.diag(0, &prev[..n], &prev[n..], y1r, y1i);
            // R1's input (kept by the forward pass, or F D1 h again)
            let trace = a.trace.map(|tr| &tr[2 * row..2 * row + 2 * w]);
            let (r1r, r1i): (&[f32], &[f32]) = match trace {
                Some(tr) => (&tr[..n], &tr[n..w]),
                None => pl.fft_into(y1r, y1i, o1r, o1i, false),
            };
            y8r.copy_from_slice(r1r);
            y8i.copy_from_slice(r1i);
            pl.reflect(0, y8r, y8i);
            pl.permute_diag2(y8r, y8i, y5r, y5i);
            // R2's input (kept, or F⁻¹ y5 again)
            let (r2r, r2i): (&[f32], &[f32]) = match trace {
                Some(tr) => (&tr[w..w + n], &tr[w + n..]),
                None => pl.fft_into(y5r, y5i, o2r, o2i, true),
            };
            gr.copy_from_slice(r2r);
            gi.copy_from_slice(r2i);
            pl.reflect(1, gr, gi);
            pl.diag(2, gr, gi, y8r, y8i);
            // modReLU's backward: dL/dz from dL/dh (from above plus carried)
            let (pr, pi) = a.pre[row..row + w].split_at(n);
            let (dr, di) = a.d_states[row..row + w].split_at(n);
            modrelu_back(bm, [pr, pi], [y8r, y8i], [dr, di], [cr, ci], gr, gi, db);
            // SAFETY: row b of slot t belongs to this worker
            let out = unsafe { dp.slice(row, w) };
            out[..n].copy_from_slice(gr);
            out[n..].copy_from_slice(gi);
            // through W^H, factor by factor
            pl.diag_back(2, y8r, y8i, gr, gi, dth3);
            pl.reflect_back(1, r2r, r2i, gr, gi, dv2r, dv2i);
            pl.fft(gr, gi, false);
            pl.diag_back(1, y5r, y5i, gr, gi, dth2);
            for (j, &pj) in pl.perm.iter().enumerate() {
                cr[pj] = gr[j];
                ci[pj] = gi[j];
            }
            pl.reflect_back(0, r1r, r1i, cr, ci, dv1r, dv1i);
            pl.fft(cr, ci, true);
            pl.diag_back(0, y1r, y1i, cr, ci, dth);
            flush_tiny(cr);
            flush_tiny(ci);
        }
        // SAFETY: row b of dL/dh0 belongs to this worker
        let d0 = unsafe { d0p.slice(b * w, w) };
        d0[..n].copy_from_slice(cr);
        d0[n..].copy_from_slice(ci);
    }
    acc
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn backward_rows_avx2(a: &BackIn, dp: SharedRows, d0p: SharedRows, b0: usize, b1: usize) -> Acc {
    backward_rows(a, dp, d0p, b0, b1)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn backward_rows_avx512(a: &BackIn, dp: SharedRows, d0p: SharedRows, b0: usize, b1: usize) -> Acc {
    backward_rows(a, dp, d0p, b0, b1)
}

/// dL/d(V x) `(T·B, 2N)` and dL/dh0; adds the θ, reflection and modReLU
/// bias gradients.
pub(super) fn backward(m: &Urnn, p: &[f32], x: &SeqInput<f32>, fwd: &Forward, d_states: ArrayView3<f32>, grads: &mut [f32]) -> (Array2<f32>, Array2<f32>) {
    let (t1, batch, w) = fwd.states.dim();
    let t_len = t1 - 1;
    let pl = Plan::new(m, p);
    let pre = project(p, &m.layout, x);
    let d_states = d_states.as_standard_layout();
    let mut d_pre = Array2::<f32>::zeros((t_len * batch, w));
    let mut d0 = Array2::<f32>::zeros((batch, w));
    let args = BackIn {
        pl: &pl,
        states: fwd.states.as_slice().expect("contiguous states"),
        trace: fwd.gates.as_ref().map(|(t, _)| t.as_slice().expect("contiguous trace")),
        pre: pre.as_slice().expect("contiguous projection"),
        d_states: d_states.as_slice().expect("standard layout"),
        t_len,
        batch,
    };
    let (dp, d0p) = (SharedRows::new(d_pre.as_slice_mut().unwrap()), SharedRows::new(d0.as_slice_mut().unwrap()));
    let args = &args;
    let parts = per_chunk(batch, |b0, b1| {
        #[cfg(target_arch = "x86_64")]
        {
            let level = super::kernel::level();
            if level >= 2 {
                // SAFETY: level() checked avx512f
                return unsafe { backward_rows_avx512(args, dp, d0p, b0, b1) };
            }
            if level >= 1 {
                // SAFETY: level() checked avx2 and fma
                return unsafe { backward_rows_avx2(args, dp, d0p, b0, b1) };
            }
        }
        backward_rows(args, dp, d0p, b0, b1)
    });
    // the workers' sums, added in row order as the reference adds its blocks
    for (name, pick) in [("theta", 0), ("refl", 1), ("b_mod", 2)] {
        if let Ok(v) = m.layout.get(name) {
            for (_, _, acc) in &parts {
                let part = [&acc.dtheta, &acc.drefl, &acc.db][pick];
                for (g, d) in grads[v.range()].iter_mut().zip(part) {
                    *g += *d;
                }
            }
        }
    }
    (d_pre, d0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn flush_zeroes_only_what_is_under_2_pow_minus_70() {
        let tiny = super::TINY;
        assert_eq!(tiny, 2f32.powi(-70));
        let mut v = [1e-22f32, -5e-23, 1e-40, -f32::MIN_POSITIVE / 4.0, tiny, -tiny, 1e-21, -0.5, 0.0];
        super::flush_tiny(&mut v);
        assert_eq!(v, [0.0, 0.0, 0.0, 0.0, tiny, -tiny, 1e-21, -0.5, 0.0]);
    }
}
