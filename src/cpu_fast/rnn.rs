//! The Elman RNN's recurrence on the fast CPU path (see `models::rnn::cpu`
//! for the reference it matches).

use super::kernel::matmul_acc;
use super::{add_weight_grad, per_chunk, scatter, transpose, Forward};
use crate::models::input::{project, SeqInput};
use crate::models::rnn::{Activation, Rnn};
use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3};

pub(super) fn forward(m: &Rnn, p: &[f32], x: &SeqInput<f32>, h0: ArrayView2<f32>) -> Forward {
    let (t_len, batch, h) = (x.t_len(), x.batch(), m.dims.hidden);
    let pre = project(p, &m.layout, x);
    let pre = pre.as_slice().expect("standard layout");
    let wt = transpose(&p[m.layout.get("w_rec").expect("w_rec").range()], h, h);
    let h0 = h0.as_standard_layout();
    let h0 = h0.as_slice().expect("standard layout");
    let tanh = m.act == Activation::Tanh;
    let parts = per_chunk(batch, |b0, b1| {
        let nb = b1 - b0;
        let mut st = vec![0f32; (t_len + 1) * nb * h];
        st[..nb * h].copy_from_slice(&h0[b0 * h..b1 * h]);
        for t in 0..t_len {
            let (done, rest) = st.split_at_mut((t + 1) * nb * h);
            let prev = &done[t * nb * h..];
            let a = &mut rest[..nb * h];
            a.copy_from_slice(&pre[(t * batch + b0) * h..(t * batch + b1) * h]);
            matmul_acc(a, prev, &wt, nb, h, h);
            if tanh {
                a.iter_mut().for_each(|v| *v = super::tanh(*v));
            }
        }
        st
    });
    let mut states = Array3::<f32>::zeros((t_len + 1, batch, h));
    for (b0, b1, st) in &parts {
        scatter(states.as_slice_mut().unwrap(), 0, t_len + 1, batch, h, *b0, *b1, st);
    }
    Forward { states, gates: None }
}

/// dL/d(pre-activations) `(T·B, H)` and dL/dh0; adds the w_rec gradient.
pub(super) fn backward(m: &Rnn, p: &[f32], fwd: &Forward, d_states: ArrayView3<f32>, grads: &mut [f32]) -> (Array2<f32>, Array2<f32>) {
    let states = &fwd.states;
    let (t1, batch, h) = states.dim();
    let t_len = t1 - 1;
    let ss = states.as_slice().unwrap();
    let ds = d_states.as_standard_layout();
    let ds = ds.as_slice().expect("standard layout");
    let w = &p[m.layout.get("w_rec").expect("w_rec").range()];
    let tanh = m.act == Activation::Tanh;
    let parts = per_chunk(batch, |b0, b1| {
        let nb = b1 - b0;
        let mut da = vec![0f32; t_len * nb * h];
        for t in (0..t_len).rev() {
            let (cur, next) = da.split_at_mut((t + 1) * nb * h);
            let cur = &mut cur[t * nb * h..];
            cur.copy_from_slice(&ds[(t * batch + b0) * h..(t * batch + b1) * h]);
            if t + 1 < t_len {
                matmul_acc(cur, &next[..nb * h], w, nb, h, h);
            }
            if tanh {
                let hs = &ss[((t + 1) * batch + b0) * h..((t + 1) * batch + b1) * h];
                cur.iter_mut().zip(hs).for_each(|(d, &hv)| *d *= 1.0 - hv * hv);
            }
        }
        let mut d0 = vec![0f32; nb * h];
        if t_len > 0 {
            matmul_acc(&mut d0, &da[..nb * h], w, nb, h, h);
        }
        (da, d0)
    });
    let mut da = Array2::<f32>::zeros((t_len * batch, h));
    let mut d0 = Array2::<f32>::zeros((batch, h));
    for (b0, b1, (d, d0c)) in &parts {
        scatter(da.as_slice_mut().unwrap(), 0, t_len, batch, h, *b0, *b1, d);
        d0.as_slice_mut().unwrap()[b0 * h..b1 * h].copy_from_slice(d0c);
    }
    let prev = states.slice(s![..t_len, .., ..]);
    let prev = prev.to_shape((t_len * batch, h)).expect("states");
    add_weight_grad(&m.layout, "w_rec", &da, prev.view(), grads);
    (da, d0)
}
