//! The Elman RNN's recurrence on the fast CPU path (see `models::rnn::cpu`
//! for the reference it matches).

use super::kernel::matmul_acc;
use super::{per_chunk, transpose, Forward, SharedRows};
use crate::cpu::add_weight_grad;
use crate::models::input::{project_into, SeqInput};
use crate::models::rnn::{Activation, Rnn};
use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3};

pub(super) fn forward(m: &Rnn, p: &[f32], x: &SeqInput<f32>, h0: ArrayView2<f32>) -> Forward {
    let (t_len, batch, h) = (x.t_len(), x.batch(), m.dims.hidden);
    let wt = transpose(&p[m.layout.get("w_rec").expect("w_rec").range()], h, h);
    let mut states = Array3::<f32>::zeros((t_len + 1, batch, h));
    states.slice_mut(s![0, .., ..]).assign(&h0);
    {
        // pre-activations of every step from the inputs, into slots 1..=T
        let mut rest = states.slice_mut(s![1.., .., ..]);
        let pre = rest.view_mut().into_shape_with_order((t_len * batch, h)).expect("contiguous states");
        project_into(p, &m.layout, x, pre);
    }
    let act = m.act;
    let sp = SharedRows::new(states.as_slice_mut().unwrap());
    per_chunk(batch, |b0, b1| {
        let nb = b1 - b0;
        for t in 0..t_len {
            // SAFETY: rows b0..b1 of slots t and t + 1 belong to this worker
            let prev = unsafe { sp.slice((t * batch + b0) * h, nb * h) };
            let a = unsafe { sp.slice(((t + 1) * batch + b0) * h, nb * h) };
            matmul_acc(a, prev, &wt, nb, h, h);
            match act {
                Activation::Tanh => a.iter_mut().for_each(|v| *v = super::tanh(*v)),
                Activation::Sigmoid => a.iter_mut().for_each(|v| *v = super::sigmoid(*v)),
                Activation::Linear => {}
            }
        }
    });
    Forward { states, gates: None }
}

/// dL/d(pre-activations) `(T·B, H)` and dL/dh0; adds the w_rec gradient.
pub(super) fn backward(m: &Rnn, p: &[f32], fwd: &Forward, d_states: ArrayView3<f32>, grads: &mut [f32]) -> (Array2<f32>, Array2<f32>) {
    let states = &fwd.states;
    let (t1, batch, h) = states.dim();
    let t_len = t1 - 1;
    let ss = states.as_slice().unwrap();
    let mut da = d_states.as_standard_layout().into_owned().into_shape_with_order((t_len * batch, h)).expect("d_states");
    let mut d0 = Array2::<f32>::zeros((batch, h));
    let w = &p[m.layout.get("w_rec").expect("w_rec").range()];
    let act = m.act;
    let (dap, d0p) = (SharedRows::new(da.as_slice_mut().unwrap()), SharedRows::new(d0.as_slice_mut().unwrap()));
    per_chunk(batch, |b0, b1| {
        let nb = b1 - b0;
        for t in (0..t_len).rev() {
            // SAFETY: rows b0..b1 of slots t and t + 1 belong to this worker
            let cur = unsafe { dap.slice((t * batch + b0) * h, nb * h) };
            if t + 1 < t_len {
                let next = unsafe { dap.slice(((t + 1) * batch + b0) * h, nb * h) };
                matmul_acc(cur, next, w, nb, h, h);
            }
            let hs = &ss[((t + 1) * batch + b0) * h..((t + 1) * batch + b1) * h];
            match act {
                Activation::Tanh => cur.iter_mut().zip(hs).for_each(|(d, &hv)| *d *= 1.0 - hv * hv),
                Activation::Sigmoid => cur.iter_mut().zip(hs).for_each(|(d, &hv)| *d *= hv * (1.0 - hv)),
                Activation::Linear => {}
            }
        }
        if t_len > 0 {
            let first = unsafe { dap.slice(b0 * h, nb * h) };
            matmul_acc(unsafe { d0p.slice(b0 * h, nb * h) }, first, w, nb, h, h);
        }
    });
    let prev = states.slice(s![..t_len, .., ..]);
    let prev = prev.to_shape((t_len * batch, h)).expect("states");
    add_weight_grad(&m.layout, "w_rec", da.view(), prev.view(), grads);
    (da, d0)
}
