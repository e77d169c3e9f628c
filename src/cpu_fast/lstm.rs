//! The LSTM's recurrence on the fast CPU path (see `models::lstm::cpu` for
//! the reference it matches).

use super::kernel::matmul_acc;
use super::{add_weight_grad, per_chunk, scatter, transpose, Forward};
use crate::models::input::{project, SeqInput};
use crate::models::lstm::Lstm;
use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3};

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

pub(super) fn forward(m: &Lstm, p: &[f32], x: &SeqInput<f32>, s0: ArrayView2<f32>) -> Forward {
    let (t_len, batch, h) = (x.t_len(), x.batch(), m.dims.hidden);
    let (g4, s2) = (4 * h, 2 * h);
    let pre = project(p, &m.layout, x);
    let pre = pre.as_slice().expect("standard layout");
    let wt = transpose(&p[m.layout.get("w_rec").expect("w_rec").range()], g4, h);
    let s0 = s0.as_standard_layout();
    let s0 = s0.as_slice().expect("standard layout");
    let parts = per_chunk(batch, |b0, b1| {
        let nb = b1 - b0;
        let (mut hb, mut cb) = (vec![0f32; nb * h], vec![0f32; nb * h]);
        for r in 0..nb {
            hb[r * h..(r + 1) * h].copy_from_slice(&s0[(b0 + r) * s2..(b0 + r) * s2 + h]);
            cb[r * h..(r + 1) * h].copy_from_slice(&s0[(b0 + r) * s2 + h..(b0 + r + 1) * s2]);
        }
        let mut st = vec![0f32; t_len * nb * s2];
        let mut gates = vec![0f32; t_len * nb * g4];
        let mut tcs = vec![0f32; t_len * nb * h];
        for t in 0..t_len {
            let a = &mut gates[t * nb * g4..(t + 1) * nb * g4];
            a.copy_from_slice(&pre[(t * batch + b0) * g4..(t * batch + b1) * g4]);
            matmul_acc(a, &hb, &wt, nb, g4, h);
            for r in 0..nb {
                let row = &mut a[r * g4..(r + 1) * g4];
                let srow = &mut st[(t * nb + r) * s2..(t * nb + r + 1) * s2];
                let tc = &mut tcs[(t * nb + r) * h..(t * nb + r + 1) * h];
                for i in 0..h {
                    let (ig, fg, gg, og) = (sigmoid(row[i]), sigmoid(row[h + i]), super::tanh(row[2 * h + i]), sigmoid(row[3 * h + i]));
                    row[i] = ig;
                    row[h + i] = fg;
                    row[2 * h + i] = gg;
                    row[3 * h + i] = og;
                    let c = fg * cb[r * h + i] + ig * gg;
                    let th = super::tanh(c);
                    cb[r * h + i] = c;
                    hb[r * h + i] = og * th;
                    tc[i] = th;
                    srow[i] = og * th;
                    srow[h + i] = c;
                }
            }
        }
        (st, gates, tcs)
    });
    let mut states = Array3::<f32>::zeros((t_len + 1, batch, s2));
    states.slice_mut(s![0, .., ..]).assign(&ArrayView2::from_shape((batch, s2), s0).expect("s0"));
    let mut gates = Array2::<f32>::zeros((t_len * batch, g4));
    let mut tcs = Array2::<f32>::zeros((t_len * batch, h));
    {
        let (sd, gd, td) = (states.as_slice_mut().unwrap(), gates.as_slice_mut().unwrap(), tcs.as_slice_mut().unwrap());
        for (b0, b1, (st, g, tc)) in &parts {
            scatter(sd, 1, t_len, batch, s2, *b0, *b1, st);
            scatter(gd, 0, t_len, batch, g4, *b0, *b1, g);
            scatter(td, 0, t_len, batch, h, *b0, *b1, tc);
        }
    }
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
    let parts = per_chunk(batch, |b0, b1| {
        let nb = b1 - b0;
        let (mut dh_carry, mut dc_carry) = (vec![0f32; nb * h], vec![0f32; nb * h]);
        let mut da = vec![0f32; t_len * nb * g4];
        for t in (0..t_len).rev() {
            let da_t = &mut da[t * nb * g4..(t + 1) * nb * g4];
            for r in 0..nb {
                let gr = (t * batch + b0 + r) * g4;
                let g = &gs[gr..gr + g4];
                let tc = &ts[(t * batch + b0 + r) * h..(t * batch + b0 + r + 1) * h];
                let c_prev = &ss[(t * batch + b0 + r) * s2 + h..(t * batch + b0 + r + 1) * s2];
                let d = &ds[(t * batch + b0 + r) * s2..(t * batch + b0 + r + 1) * s2];
                let out = &mut da_t[r * g4..(r + 1) * g4];
                for i in 0..h {
                    let (ig, fg, gg, og) = (g[i], g[h + i], g[2 * h + i], g[3 * h + i]);
                    let tcv = tc[i];
                    let dh = d[i] + dh_carry[r * h + i];
                    let dc = d[h + i] + dc_carry[r * h + i] + dh * og * (1.0 - tcv * tcv);
                    out[i] = dc * gg * ig * (1.0 - ig);
                    out[h + i] = dc * c_prev[i] * fg * (1.0 - fg);
                    out[2 * h + i] = dc * ig * (1.0 - gg * gg);
                    out[3 * h + i] = dh * tcv * og * (1.0 - og);
                    dc_carry[r * h + i] = dc * fg;
                }
            }
            dh_carry.fill(0.0);
            matmul_acc(&mut dh_carry, da_t, w, nb, h, g4);
        }
        (da, dh_carry, dc_carry)
    });
    let mut da = Array2::<f32>::zeros((t_len * batch, g4));
    let mut d0 = Array2::<f32>::zeros((batch, s2));
    for (b0, b1, (d, dh, dc)) in &parts {
        scatter(da.as_slice_mut().unwrap(), 0, t_len, batch, g4, *b0, *b1, d);
        for r in 0..b1 - b0 {
            d0.slice_mut(s![b0 + r, ..h]).assign(&ndarray::ArrayView1::from(&dh[r * h..(r + 1) * h]));
            d0.slice_mut(s![b0 + r, h..]).assign(&ndarray::ArrayView1::from(&dc[r * h..(r + 1) * h]));
        }
    }
    let prev = states.slice(s![..t_len, .., ..h]);
    let prev = prev.to_shape((t_len * batch, h)).expect("states");
    add_weight_grad(&m.layout, "w_rec", &da, prev.view(), grads);
    (da, d0)
}
