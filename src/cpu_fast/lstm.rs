//! The LSTM's recurrence on the fast CPU path (see `models::lstm::cpu` for
//! the reference it matches).

use super::kernel::matmul_acc;
use super::{per_chunk, sigmoid, transpose, Forward, SharedRows};
use crate::cpu::add_weight_grad;
use crate::models::input::{project, SeqInput};
use crate::models::lstm::Lstm;
use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3};

/// One row's gates and cell update, in passes over contiguous slices so
/// they vectorise: `row` holds the pre-activations (i, f, g, o) and gets
/// the activations; `srow` gets [h; c], `tc` tanh(c); `hr`, `cr` are the
/// running h and c.
#[inline(always)]
fn cell_body(row: &mut [f32], srow: &mut [f32], tc: &mut [f32], hr: &mut [f32], cr: &mut [f32]) {
    let h = hr.len();
    let (ifg, rest) = row.split_at_mut(2 * h);
    let (gb, ob) = rest.split_at_mut(h);
    for v in ifg.iter_mut() {
        *v = sigmoid(*v);
    }
    for v in ob.iter_mut() {
        *v = sigmoid(*v);
    }
    for v in gb.iter_mut() {
        *v = super::tanh(*v);
    }
    let (ib, fb) = ifg.split_at(h);
    let (sh, sc) = srow.split_at_mut(h);
    for i in 0..h {
        let c = fb[i] * cr[i] + ib[i] * gb[i];
        cr[i] = c;
        sc[i] = c;
    }
    for (t, &c) in tc.iter_mut().zip(cr.iter()) {
        *t = super::tanh(c);
    }
    for i in 0..h {
        let v = ob[i] * tc[i];
        hr[i] = v;
        sh[i] = v;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn cell_avx2(row: &mut [f32], srow: &mut [f32], tc: &mut [f32], hr: &mut [f32], cr: &mut [f32]) {
    cell_body(row, srow, tc, hr, cr)
}

fn cell(row: &mut [f32], srow: &mut [f32], tc: &mut [f32], hr: &mut [f32], cr: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if super::kernel::level() >= 1 {
            // SAFETY: level() checked avx2 and fma
            return unsafe { cell_avx2(row, srow, tc, hr, cr) };
        }
    }
    cell_body(row, srow, tc, hr, cr)
}

/// One row's backward through the cell: from the gates `g` (i, f, g, o),
/// tanh(c_t) `tc`, c_{t−1}, dL/d[h_t; c_t] from above `d` and the carried
/// dh and dc, writes dL/d(pre-activations) into `out` and dc·f into `dcc`.
#[inline(always)]
fn cell_back_body(g: &[f32], tc: &[f32], c_prev: &[f32], d: &[f32], dhc: &[f32], dcc: &mut [f32], out: &mut [f32]) {
    let h = tc.len();
    let (gi, gf, gg, go) = (&g[..h], &g[h..2 * h], &g[2 * h..3 * h], &g[3 * h..4 * h]);
    let (dh_in, dc_in) = (&d[..h], &d[h..2 * h]);
    let (c_prev, dhc, dcc) = (&c_prev[..h], &dhc[..h], &mut dcc[..h]);
    let (oi, rest) = out.split_at_mut(h);
    let (of, rest) = rest.split_at_mut(h);
    let (og_, oo) = rest.split_at_mut(h);
    for i in 0..h {
        let (ig, fg, gv, ov, tcv) = (gi[i], gf[i], gg[i], go[i], tc[i]);
        let dh = dh_in[i] + dhc[i];
        let dc = dc_in[i] + dcc[i] + dh * ov * (1.0 - tcv * tcv);
        oi[i] = dc * gv * ig * (1.0 - ig);
        of[i] = dc * c_prev[i] * fg * (1.0 - fg);
        og_[i] = dc * ig * (1.0 - gv * gv);
        oo[i] = dh * tcv * ov * (1.0 - ov);
        dcc[i] = dc * fg;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn cell_back_avx2(g: &[f32], tc: &[f32], c_prev: &[f32], d: &[f32], dhc: &[f32], dcc: &mut [f32], out: &mut [f32]) {
    cell_back_body(g, tc, c_prev, d, dhc, dcc, out)
}

fn cell_back(g: &[f32], tc: &[f32], c_prev: &[f32], d: &[f32], dhc: &[f32], dcc: &mut [f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if super::kernel::level() >= 1 {
            // SAFETY: level() checked avx2 and fma
            return unsafe { cell_back_avx2(g, tc, c_prev, d, dhc, dcc, out) };
        }
    }
    cell_back_body(g, tc, c_prev, d, dhc, dcc, out)
}

pub(super) fn forward(m: &Lstm, p: &[f32], x: &SeqInput<f32>, s0: ArrayView2<f32>) -> Forward {
    let (t_len, batch, h) = (x.t_len(), x.batch(), m.dims.hidden);
    let (g4, s2) = (4 * h, 2 * h);
    let pre = project(p, &m.layout, x);
    let pre = pre.as_slice().expect("standard layout");
    let wt = transpose(&p[m.layout.get("w_rec").expect("w_rec").range()], g4, h);
    let mut states = Array3::<f32>::zeros((t_len + 1, batch, s2));
    states.slice_mut(s![0, .., ..]).assign(&s0);
    let mut gates = Array2::<f32>::zeros((t_len * batch, g4));
    let mut tcs = Array2::<f32>::zeros((t_len * batch, h));
    let (sp, gp, tp) = (SharedRows::new(states.as_slice_mut().unwrap()), SharedRows::new(gates.as_slice_mut().unwrap()), SharedRows::new(tcs.as_slice_mut().unwrap()));
    per_chunk(batch, |b0, b1| {
        let nb = b1 - b0;
        // SAFETY: this worker touches rows b0..b1 of every time slot only
        let (mut hb, mut cb) = (vec![0f32; nb * h], vec![0f32; nb * h]);
        let s_init = unsafe { sp.slice(b0 * s2, nb * s2) };
        for r in 0..nb {
            hb[r * h..(r + 1) * h].copy_from_slice(&s_init[r * s2..r * s2 + h]);
            cb[r * h..(r + 1) * h].copy_from_slice(&s_init[r * s2 + h..(r + 1) * s2]);
        }
        for t in 0..t_len {
            let a = unsafe { gp.slice((t * batch + b0) * g4, nb * g4) };
            let st = unsafe { sp.slice(((t + 1) * batch + b0) * s2, nb * s2) };
            let tc = unsafe { tp.slice((t * batch + b0) * h, nb * h) };
            a.copy_from_slice(&pre[(t * batch + b0) * g4..(t * batch + b1) * g4]);
            matmul_acc(a, &hb, &wt, nb, g4, h);
            for r in 0..nb {
                let row = &mut a[r * g4..(r + 1) * g4];
                cell(row, &mut st[r * s2..(r + 1) * s2], &mut tc[r * h..(r + 1) * h], &mut hb[r * h..(r + 1) * h], &mut cb[r * h..(r + 1) * h]);
            }
        }
    });
    Forward { states, gates: Some((gates, tcs)) }
}

/// dL/d(pre-activations) `(T·B, 4H)` and dL/d(initial state); adds the w_rec gradient.
pub(super) fn backward(m: &Lstm, p: &[f32], fwd: &Forward, d_states: ArrayView3<f32>, grads: &mut [f32]) -> (Array2<f32>, Array2<f32>) {
    let states = &fwd.states;
    let (t1, batch, s2) = states.dim();
    let (t_len, h, g4) = (t1 - 1, m.dims.hidden, 4 * m.dims.hidden);
    let (gates, tcs) = fwd.gates.as_ref().expect("the LSTM's forward keeps its gates");
    let (gs, ts, ss) = (gates.as_slice().unwrap(), tcs.as_slice().unwrap(), states.as_slice().unwrap());
    let ds = d_states.as_standard_layout();
    let ds = ds.as_slice().expect("standard layout");
    let w = &p[m.layout.get("w_rec").expect("w_rec").range()];
    let mut da = Array2::<f32>::zeros((t_len * batch, g4));
    let mut d0 = Array2::<f32>::zeros((batch, s2));
    let (dap, d0p) = (SharedRows::new(da.as_slice_mut().unwrap()), SharedRows::new(d0.as_slice_mut().unwrap()));
    per_chunk(batch, |b0, b1| {
        let nb = b1 - b0;
        let (mut dh_carry, mut dc_carry) = (vec![0f32; nb * h], vec![0f32; nb * h]);
        for t in (0..t_len).rev() {
            // SAFETY: rows b0..b1 of slot t belong to this worker
            let da_t = unsafe { dap.slice((t * batch + b0) * g4, nb * g4) };
            for r in 0..nb {
                let row = t * batch + b0 + r;
                let g = &gs[row * g4..(row + 1) * g4];
                let tc = &ts[row * h..(row + 1) * h];
                let c_prev = &ss[row * s2 + h..(row + 1) * s2];
                let d = &ds[row * s2..(row + 1) * s2];
                let out = &mut da_t[r * g4..(r + 1) * g4];
                cell_back(g, tc, c_prev, d, &dh_carry[r * h..(r + 1) * h], &mut dc_carry[r * h..(r + 1) * h], out);
            }
            dh_carry.fill(0.0);
            matmul_acc(&mut dh_carry, da_t, w, nb, h, g4);
        }
        let d0c = unsafe { d0p.slice(b0 * s2, nb * s2) };
        for r in 0..nb {
            d0c[r * s2..r * s2 + h].copy_from_slice(&dh_carry[r * h..(r + 1) * h]);
            d0c[r * s2 + h..(r + 1) * s2].copy_from_slice(&dc_carry[r * h..(r + 1) * h]);
        }
    });
    let prev = states.slice(s![..t_len, .., ..h]);
    let prev = prev.to_shape((t_len * batch, h)).expect("states");
    add_weight_grad(&m.layout, "w_rec", da.view(), prev.view(), grads);
    (da, d0)
}
