//! The GRU's recurrence on the fast CPU path (see `models::gru::cpu` for
//! the reference it matches): r = σ(a_r + u_r), z = σ(a_z + u_z),
//! n = tanh(a_n + r (u_n + b_hn)), h' = (1 − z) n + z h, with u = W h.

use super::kernel::matmul_acc;
use super::{per_chunk, sigmoid, transpose, Forward, SharedRows};
use crate::cpu::add_weight_grad;
use crate::models::gru::Gru;
use crate::models::input::{project, SeqInput};
use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3};

/// One row of one step: from the pre-activations `pre` (3H), u (3H), b_hn
/// and h_{t−1}, the kept gates [r; z; n; u_n + b_hn] (4H) and h_t.
#[inline(always)]
fn cell_body(pre: &[f32], u: &[f32], b_hn: &[f32], hp: &[f32], g: &mut [f32], hn_out: &mut [f32]) {
    let h = hp.len();
    let (pre, u, b_hn, g) = (&pre[..3 * h], &u[..3 * h], &b_hn[..h], &mut g[..4 * h]);
    for i in 0..2 * h {
        g[i] = sigmoid(pre[i] + u[i]);
    }
    for i in 0..h {
        let hn = u[2 * h + i] + b_hn[i];
        g[3 * h + i] = hn;
        g[2 * h + i] = super::tanh(pre[2 * h + i] + g[i] * hn);
    }
    for i in 0..h {
        let z = g[h + i];
        hn_out[i] = (1.0 - z) * g[2 * h + i] + z * hp[i];
    }
}

/// One row backward: from the gates, h_{t−1} and dL/dh_t (from above plus
/// carried), dL/d(pre) (3H), du (3H) and the direct part z·dh.
#[inline(always)]
fn cell_back_body(g: &[f32], hp: &[f32], d: &[f32], carry: &[f32], d_pre: &mut [f32], du: &mut [f32], direct: &mut [f32]) {
    let h = hp.len();
    let (g, d, carry, d_pre, du, direct) = (&g[..4 * h], &d[..h], &carry[..h], &mut d_pre[..3 * h], &mut du[..3 * h], &mut direct[..h]);
    for i in 0..h {
        let (r, z, n, hn) = (g[i], g[h + i], g[2 * h + i], g[3 * h + i]);
        let dh = d[i] + carry[i];
        let dan = dh * (1.0 - z) * (1.0 - n * n);
        let dar = dan * hn * r * (1.0 - r);
        let daz = dh * (hp[i] - n) * z * (1.0 - z);
        d_pre[i] = dar;
        d_pre[h + i] = daz;
        d_pre[2 * h + i] = dan;
        du[i] = dar;
        du[h + i] = daz;
        du[2 * h + i] = dan * r;
        direct[i] = dh * z;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn cell_avx2(pre: &[f32], u: &[f32], b_hn: &[f32], hp: &[f32], g: &mut [f32], hn_out: &mut [f32]) {
    cell_body(pre, u, b_hn, hp, g, hn_out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn cell_back_avx2(g: &[f32], hp: &[f32], d: &[f32], carry: &[f32], d_pre: &mut [f32], du: &mut [f32], direct: &mut [f32]) {
    cell_back_body(g, hp, d, carry, d_pre, du, direct)
}

fn cell(pre: &[f32], u: &[f32], b_hn: &[f32], hp: &[f32], g: &mut [f32], hn_out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if super::kernel::level() >= 1 {
            // SAFETY: level() checked avx2 and fma
            return unsafe { cell_avx2(pre, u, b_hn, hp, g, hn_out) };
        }
    }
    cell_body(pre, u, b_hn, hp, g, hn_out)
}

fn cell_back(g: &[f32], hp: &[f32], d: &[f32], carry: &[f32], d_pre: &mut [f32], du: &mut [f32], direct: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if super::kernel::level() >= 1 {
            // SAFETY: level() checked avx2 and fma
            return unsafe { cell_back_avx2(g, hp, d, carry, d_pre, du, direct) };
        }
    }
    cell_back_body(g, hp, d, carry, d_pre, du, direct)
}

fn b_hn(m: &Gru, p: &[f32]) -> Vec<f32> {
    match m.layout.get("b_hn") {
        Ok(v) => p[v.range()].to_vec(),
        Err(_) => vec![0.0; m.dims.hidden],
    }
}

pub(super) fn forward(m: &Gru, p: &[f32], x: &SeqInput<f32>, h0: ArrayView2<f32>) -> Forward {
    let (t_len, batch, h) = (x.t_len(), x.batch(), m.dims.hidden);
    let g3 = 3 * h;
    let pre = project(p, &m.layout, x);
    let pre = pre.as_slice().expect("standard layout");
    let wt = transpose(&p[m.layout.get("w_rec").expect("w_rec").range()], g3, h);
    let bhn = b_hn(m, p);
    let mut states = Array3::<f32>::zeros((t_len + 1, batch, h));
    states.slice_mut(s![0, .., ..]).assign(&h0);
    let mut gates = Array2::<f32>::zeros((t_len * batch, 4 * h));
    let (sp, gp) = (SharedRows::new(states.as_slice_mut().unwrap()), SharedRows::new(gates.as_slice_mut().unwrap()));
    per_chunk(batch, |b0, b1| {
        let nb = b1 - b0;
        let mut u = vec![0f32; nb * g3];
        for t in 0..t_len {
            // SAFETY: rows b0..b1 of slots t and t + 1 belong to this worker
            let prev = unsafe { sp.slice((t * batch + b0) * h, nb * h) };
            let next = unsafe { sp.slice(((t + 1) * batch + b0) * h, nb * h) };
            let g = unsafe { gp.slice((t * batch + b0) * 4 * h, nb * 4 * h) };
            u.fill(0.0);
            matmul_acc(&mut u, prev, &wt, nb, g3, h);
            for r in 0..nb {
                let row = t * batch + b0 + r;
                cell(&pre[row * g3..(row + 1) * g3], &u[r * g3..(r + 1) * g3], &bhn, &prev[r * h..(r + 1) * h], &mut g[r * 4 * h..(r + 1) * 4 * h], &mut next[r * h..(r + 1) * h]);
            }
        }
    });
    Forward { states, gates: Some((gates, Array2::zeros((0, 0)))) }
}

/// dL/d(pre-activations) `(T·B, 3H)` and dL/dh0; adds the w_rec and b_hn gradients.
pub(super) fn backward(m: &Gru, p: &[f32], fwd: &Forward, d_states: ArrayView3<f32>, grads: &mut [f32]) -> (Array2<f32>, Array2<f32>) {
    let states = &fwd.states;
    let (t1, batch, h) = states.dim();
    let (t_len, g3) = (t1 - 1, 3 * h);
    let gs = fwd.gates.as_ref().expect("the GRU's forward keeps its gates").0.as_slice().unwrap();
    let ss = states.as_slice().unwrap();
    let ds = d_states.as_standard_layout();
    let ds = ds.as_slice().expect("standard layout");
    let w = &p[m.layout.get("w_rec").expect("w_rec").range()];
    let mut d_pre = Array2::<f32>::zeros((t_len * batch, g3));
    let mut du = Array2::<f32>::zeros((t_len * batch, g3));
    let mut d0 = Array2::<f32>::zeros((batch, h));
    let (dpp, dup, d0p) = (SharedRows::new(d_pre.as_slice_mut().unwrap()), SharedRows::new(du.as_slice_mut().unwrap()), SharedRows::new(d0.as_slice_mut().unwrap()));
    per_chunk(batch, |b0, b1| {
        let nb = b1 - b0;
        let mut carry = vec![0f32; nb * h];
        let mut direct = vec![0f32; nb * h];
        for t in (0..t_len).rev() {
            // SAFETY: rows b0..b1 of slot t belong to this worker
            let dp_t = unsafe { dpp.slice((t * batch + b0) * g3, nb * g3) };
            let du_t = unsafe { dup.slice((t * batch + b0) * g3, nb * g3) };
            for r in 0..nb {
                let row = t * batch + b0 + r;
                cell_back(
                    &gs[row * 4 * h..(row + 1) * 4 * h],
                    &ss[row * h..(row + 1) * h],
                    &ds[row * h..(row + 1) * h],
                    &carry[r * h..(r + 1) * h],
                    &mut dp_t[r * g3..(r + 1) * g3],
                    &mut du_t[r * g3..(r + 1) * g3],
                    &mut direct[r * h..(r + 1) * h],
                );
            }
            carry.copy_from_slice(&direct);
            matmul_acc(&mut carry, du_t, w, nb, h, g3);
        }
        unsafe { d0p.slice(b0 * h, nb * h) }.copy_from_slice(&carry);
    });
    let prev = states.slice(s![..t_len, .., ..]);
    let prev = prev.to_shape((t_len * batch, h)).expect("states");
    add_weight_grad(&m.layout, "w_rec", du.view(), prev.view(), grads);
    if let Ok(v) = m.layout.get("b_hn") {
        let db = du.slice(s![.., 2 * h..]).sum_axis(ndarray::Axis(0));
        for (g, d) in grads[v.range()].iter_mut().zip(db.iter()) {
            *g += *d;
        }
    }
    (d_pre, d0)
}
