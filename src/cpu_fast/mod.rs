//! A faster f32 CPU path for the tanh (and linear) RNN, the LSTM, the GRU
//! (the baselines users train on machines without a GPU) and the uRNN. It follows the
//! reference (`models::*::cpu`) step for step but runs the recurrence with
//! an unpacked register-blocked product (`kernel`), keeps the LSTM's gate
//! activations from the forward pass instead of recomputing them, and
//! splits the batch rows over threads, each owning its rows for the whole
//! sequence (rows never interact inside the recurrence). The input
//! projection, readout and weight gradients stay single large GEMMs.
//!
//! It is held to the reference like a kernel (tests/cpu_fast.rs);
//! `LONGMEM_CPU_REFERENCE=1` makes the CPU backend use the reference instead.

pub mod kernel;
pub mod xent;
mod gru;
mod lstm;
mod rnn;
mod urnn;

pub use urnn::set_urnn_trace_cap;

use crate::models::input::project_backward;
use crate::models::Model;
use crate::tasks::Batch;
use ndarray::{s, Array2, Array3, ArrayView2};

/// Whether `LONGMEM_CPU_REFERENCE=1` asks for the reference code everywhere.
pub fn reference_forced() -> bool {
    // read once: this is asked on every training step
    static REFERENCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REFERENCE.get_or_init(|| std::env::var("LONGMEM_CPU_REFERENCE").is_ok_and(|v| v == "1"))
}

/// Whether `model` has a fast path.
pub fn supports(model: &Model) -> bool {
    matches!(model, Model::Rnn(_) | Model::Lstm(_) | Model::Gru(_) | Model::Urnn(_)) && !reference_forced()
}

/// What the forward pass keeps for the backward pass.
pub struct Forward {
    /// states `(T + 1, B, S)`, as the reference returns them
    pub states: Array3<f32>,
    /// LSTM: gate activations `(T·B, 4H)` and tanh(c_t) `(T·B, H)`;
    /// GRU: [r; z; n; u_n + b_hn] `(T·B, 4H)` (and an empty second array);
    /// uRNN: R1's and R2's inputs `(T·B, 4N)` when kept (and an empty second)
    gates: Option<(Array2<f32>, Array2<f32>)>,
}

/// Contiguous row ranges of the batch, one per thread (at least 8 rows each
/// so a thread has full 4-row blocks to work on).
pub(crate) fn row_chunks(batch: usize) -> Vec<(usize, usize)> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let parts = cores.min(batch / 8).max(1);
    let per = batch.div_ceil(parts);
    (0..parts).map(|i| (i * per, ((i + 1) * per).min(batch))).filter(|(a, b)| a < b).collect()
}

/// Run `f` on each row chunk, in threads when there is more than one.
pub(crate) fn per_chunk<R: Send>(batch: usize, f: impl Fn(usize, usize) -> R + Sync) -> Vec<(usize, usize, R)> {
    if batch == 0 {
        return Vec::new();
    }
    let chunks = row_chunks(batch);
    if chunks.len() == 1 {
        let (a, b) = chunks[0];
        return vec![(a, b, f(a, b))];
    }
    let f = &f;
    std::thread::scope(|sc| {
        let hs: Vec<_> = chunks.iter().map(|&(a, b)| (a, b, sc.spawn(move || f(a, b)))).collect();
        hs.into_iter().map(|(a, b, h)| (a, b, h.join().expect("fast CPU worker panicked"))).collect()
    })
}

/// The model's states from `h0` (the fast forward).
pub fn forward(model: &Model, p: &[f32], batch: &Batch, h0: ArrayView2<f32>) -> Forward {
    forward_for(model, p, batch, h0, false)
}

/// The fast forward; `for_backward` keeps what the backward pass reuses
/// where that is optional (the uRNN's trace).
fn forward_for(model: &Model, p: &[f32], batch: &Batch, h0: ArrayView2<f32>, for_backward: bool) -> Forward {
    let input = batch.input(&batch.x);
    match model {
        Model::Rnn(m) => rnn::forward(m, p, &input, h0),
        Model::Lstm(m) => lstm::forward(m, p, &input, h0),
        Model::Gru(m) => gru::forward(m, p, &input, h0),
        Model::Urnn(m) => urnn::forward(m, p, &input, h0, for_backward),
        _ => unreachable!("cpu_fast::supports was checked"),
    }
}

/// As `train::cpu::loss_grads_from` for f32: loss, gradients, outputs (of
/// the scored steps) and the state the next batch carries on from.
pub fn loss_grads_from(model: &Model, p: &[f32], batch: &Batch, h0: ArrayView2<f32>, own_start: bool) -> (f32, Vec<f32>, Array2<f32>, Array2<f32>) {
    let input = batch.input(&batch.x);
    let fwd = forward_for(model, p, batch, h0, true);
    let layout = model.layout();
    let mut grads = vec![0f32; p.len()];
    let (loss, d_states, y) = crate::train::cpu::readout_loss(model, p, fwd.states.view(), None, batch, &mut grads);
    let (d_pre, dh0) = match model {
        Model::Rnn(m) => rnn::backward(m, p, &fwd, d_states.view(), &mut grads),
        Model::Lstm(m) => lstm::backward(m, p, &fwd, d_states.view(), &mut grads),
        Model::Gru(m) => gru::backward(m, p, &fwd, d_states.view(), &mut grads),
        Model::Urnn(m) => urnn::backward(m, p, &input, &fwd, d_states.view(), &mut grads),
        _ => unreachable!("cpu_fast::supports was checked"),
    };
    project_backward(layout, &input, d_pre.view(), &mut grads);
    if let (true, Some(v)) = (own_start, model.learned_h0()) {
        for (g, d) in grads[v.range()].iter_mut().zip(dh0.sum_axis(ndarray::Axis(0)).iter()) {
            *g += *d;
        }
    }
    let last = fwd.states.slice(s![batch.carry_step(), .., ..]).to_owned();
    (loss, grads, y, last)
}

/// The (rows×cols, row-major) matrix `m` transposed, row-major.
fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; m.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = m[r * cols + c];
        }
    }
    t
}

/// A buffer the row-chunk workers write into together, each only the rows
/// it owns (rows never interact inside a recurrence).
#[derive(Clone, Copy)]
pub(crate) struct SharedRows {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: workers take disjoint ranges (see `slice`)
unsafe impl Send for SharedRows {}
unsafe impl Sync for SharedRows {}

impl SharedRows {
    pub(crate) fn new(buf: &mut [f32]) -> Self {
        SharedRows { ptr: buf.as_mut_ptr(), len: buf.len() }
    }
    /// SAFETY: the buffer outlives the workers, and no two slices alive at
    /// once overlap: each worker asks only for rows of its own chunk.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice(&self, off: usize, len: usize) -> &mut [f32] {
        assert!(off + len <= self.len, "row range outside the shared buffer");
        std::slice::from_raw_parts_mut(self.ptr.add(off), len)
    }
}

/// Σ f(v) over `vals` in sixteen f32 running sums (one per lane), so the
/// loop vectorises instead of waiting on one serial chain of adds; the
/// lanes and the tail (lengths off the 16-blocks) are added in f64. The
/// softmax's sums over a 10,000-word row and the gradient norm over a PTB
/// model's 2.8M weights both go through it.
#[inline(always)]
pub fn lane_sum_of(vals: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    const LANES: usize = 16;
    let mut lanes = [0f32; LANES];
    let mut chunks = vals.chunks_exact(LANES);
    for c in &mut chunks {
        for (s, &v) in lanes.iter_mut().zip(c) {
            *s += f(v);
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|&v| f(v) as f64).sum();
    lanes.iter().map(|&v| v as f64).sum::<f64>() + tail
}

/// e^x in straight-line f32 arithmetic the compiler can vectorise (libm's
/// expf is a call per element): x = n ln 2 + r with |r| ≤ ln2/2, a degree-6
/// Taylor polynomial in r, and 2^n put into the exponent bits. Within 2 ulps
/// of exp for x in [−87, 88]; outside that the input is clamped (e^x then is
/// at most 1e−38 off zero, or 1.6e38), and NaN stays NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // 2^n from the bits of n + ROUND, whose low mantissa bits hold n:
    // integer arithmetic only, so loops vectorise (`n as i32` is a scalar
    // saturating conversion); n + 127 lies in 1..=254 after the clamp
    let biased = (n + ROUND).to_bits().wrapping_add(127);
    p * f32::from_bits(biased << 23)
}

#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// tanh through one `exp` (glibc's tanhf goes through expm1f, several
/// times slower): a short Taylor series near 0, where 1 − e^{−2|x|} would
/// cancel, and (1 − e)/(1 + e) elsewhere; both are computed and one
/// picked, so loops over slices vectorise. Within a few ulps of tanh.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let x2 = x * x;
    let small = x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0))));
    let e = exp(-2.0 * a);
    let large = ((1.0 - e) / (1.0 + e)).copysign(x);
    if a < 0.0625 {
        small
    } else {
        large
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn exp_and_sigmoid_are_within_a_few_ulps() {
        let (mut worst, mut x) = (0f64, -87.0f32);
        while x < 88.0 {
            let want = (x as f64).exp();
            worst = worst.max(((super::exp(x) as f64) - want).abs() / want);
            let s = 1.0 / (1.0 + (-(x as f64)).exp());
            worst = worst.max(((super::sigmoid(x) as f64) - s).abs() / s);
            x += 0.000_731;
        }
        assert!(worst < 4.0 * f32::EPSILON as f64, "worst relative error {worst:e}");
        assert!(super::exp(f32::NAN).is_nan() && super::sigmoid(f32::NAN).is_nan());
        assert_eq!(super::sigmoid(1000.0), 1.0);
        assert!(super::sigmoid(-1000.0) < 1e-37);
    }

    #[test]
    fn tanh_is_within_a_few_ulps() {
        let mut worst = 0f64;
        let mut x = -12.0f32;
        while x < 12.0 {
            for v in [x, x * 1e-3, x * 1e-6] {
                let want = (v as f64).tanh();
                let got = super::tanh(v) as f64;
                worst = worst.max((got - want).abs() / want.abs().max(1e-30));
            }
            x += 0.00123;
        }
        assert!(worst < 8.0 * f32::EPSILON as f64, "worst relative error {worst:e}");
        assert_eq!(super::tanh(0.0), 0.0);
        assert_eq!(super::tanh(f32::INFINITY), 1.0);
        assert_eq!(super::tanh(-100.0), -1.0);
        assert!(super::tanh(f32::NAN).is_nan());
    }
}
