//! The readout shared by every family: `y = w_out · r + b_out`, with `r` the
//! first `readout_width` entries of the state, applied to all T·B rows.

use crate::cpu::{add_weight_grad, view1, view2};
use crate::params::ParamLayout;
use crate::real::Real;
use crate::rng::Rng;
use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, Array3, ArrayView3};

pub fn push_layout(layout: &mut ParamLayout, width: usize, output: usize, bias: bool) {
    layout.push("w_out", &[output, width]);
    if bias {
        layout.push("b_out", &[output]);
    }
}

pub fn init(layout: &ParamLayout, p: &mut [f32], width: usize, output: usize, scale: f64, rng: &mut Rng) {
    let o = layout.offset("w_out");
    let sd = (1.0 / width as f64).sqrt() * scale;
    for i in 0..output * width {
        p[o + i] = (rng.normal() * sd) as f32;
    }
}

/// Outputs `(T·B, O)` for states `(T + 1, B, S)` (slot 0 is skipped).
pub fn forward<F: Real>(p: &[F], layout: &ParamLayout, states: ArrayView3<F>, width: usize) -> Array2<F> {
    let (t1, batch, _) = states.dim();
    let w_out = view2(p, layout, "w_out");
    let r = states.slice(s![1.., .., ..width]);
    let rows = (t1 - 1) * batch;
    let r = r.to_shape((rows, width)).expect("contiguous states");
    // The threaded GEMM splits its M side over threads and packs its B
    // operand on one thread, so the longer of rows and outputs goes as M:
    // a language model's 10,000-word readout (against a few hundred rows)
    // as yᵀ = w_out rᵀ, a dense task's many rows (against a few outputs)
    // as y = r w_outᵀ. Each element is the same sum in the same order.
    let mut y = Array2::zeros((rows, w_out.dim().0));
    if w_out.dim().0 > rows {
        general_mat_mul(F::one(), &w_out, &r.t(), F::zero(), &mut y.view_mut().reversed_axes());
    } else {
        general_mat_mul(F::one(), &r, &w_out.t(), F::zero(), &mut y);
    }
    match layout.get("b_out") {
        Ok(_) => y + view1(p, layout, "b_out"),
        Err(_) => y,
    }
}

/// From dL/dy `(T·B, O)`: adds w_out, b_out gradients and returns dL/d(states 1..=T)
/// as `(T, B, S)` (zeros outside the readout features).
pub fn backward<F: Real>(
    p: &[F],
    layout: &ParamLayout,
    states: ArrayView3<F>,
    width: usize,
    dy: &Array2<F>,
    grads: &mut [F],
) -> Array3<F> {
    let (t1, batch, s_width) = states.dim();
    let t_len = t1 - 1;
    let w_out = view2(p, layout, "w_out");
    let r = states.slice(s![1.., .., ..width]);
    let r = r.to_shape((t_len * batch, width)).expect("contiguous states");
    add_weight_grad(layout, "w_out", dy.view(), r.view(), grads);
    let db = dy.sum_axis(ndarray::Axis(0));
    if let Ok(view) = layout.get("b_out") {
        for (g, v) in grads[view.range()].iter_mut().zip(db.iter()) {
            *g = *g + *v;
        }
    }
    let dr = dy.dot(&w_out); // (T·B, width)
    let mut d_states = Array3::zeros((t_len, batch, s_width));
    let dr = dr.into_shape_with_order((t_len, batch, width)).expect("shape");
    d_states.slice_mut(s![.., .., ..width]).assign(&dr);
    d_states
}
