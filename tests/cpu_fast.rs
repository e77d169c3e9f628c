//! The fast f32 CPU path (src/cpu_fast) held to the reference like a kernel:
//! loss, every gradient, outputs and the last state on fresh random inputs,
//! for the tanh and linear RNN, the LSTM and the GRU, at sizes that exercise the
//! kernel's edges and the split of batch rows over threads.

use longmem::gpu::testing::fresh_seed;
use longmem::models::{Dims, InitConfig, Model, ModelKind};
use longmem::rng::Rng;
use longmem::tasks::{Batch, Target};
use longmem::train::cpu::loss_grads_from;
use ndarray::{Array2, Array3};

fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs() as f64)).max(1e-6);
    a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((*x as f64 - *y as f64).abs())) / scale
}

fn check(kind: ModelKind, hidden: usize, batch: usize, t: usize, seed: u64) {
    check_with(kind, true, hidden, batch, t, seed)
}

fn check_with(kind: ModelKind, bias: bool, hidden: usize, batch: usize, t: usize, seed: u64) {
    let (i, o) = (3, 2);
    let model = Model::with_bias(kind, Dims { input: i, hidden, output: o }, bias).unwrap();
    let mut rng = Rng::seed(seed);
    let p = model.init(&InitConfig { gain: 1.2, ..Default::default() }, &mut rng);
    let x = Array3::from_shape_fn((t, batch, i), |_| rng.normal() as f32);
    let y: Vec<f32> = (0..t * batch * o).map(|_| rng.normal() as f32).collect();
    let b = Batch { x, target: Target::Values(y), mask: vec![1.0; t * batch], metric_mask: vec![0.0; t * batch], loss_norm: None, tokens: None, carry_state: false, feedback: None, carry_at: None };
    let h0 = Array2::from_shape_fn((batch, model.state_width()), |_| 0.5 * rng.normal() as f32);
    let (l_ref, g_ref, y_ref, last_ref) = loss_grads_from(&model, &p, &b, h0.view(), true);
    let (l, g, yv, last) = longmem::cpu_fast::loss_grads_from(&model, &p, &b, h0.view(), true);
    let what = format!("{kind:?} H={hidden} B={batch} T={t} bias {bias} seed {seed}");
    assert!(((l - l_ref) / l_ref).abs() < 1e-5, "{what}: loss {l} vs {l_ref}");
    for (name, got, want) in [
        ("grads", &g[..], &g_ref[..]),
        ("outputs", yv.as_slice().unwrap(), y_ref.as_slice().unwrap()),
        ("last state", last.as_slice().unwrap(), last_ref.as_slice().unwrap()),
    ] {
        let e = rel_err(got, want);
        assert!(e < 2e-5, "{what}: {name} relative error {e:.2e}");
    }
    // each parameter group on its own scale, so a small one cannot hide
    for v in model.layout().views() {
        let e = rel_err(&g[v.range()], &g_ref[v.range()]);
        assert!(e < 1e-4, "{what}: d{} relative error {e:.2e}", v.name);
    }
    let fwd = longmem::cpu_fast::forward(&model, &p, &b, h0.view());
    let states = model.forward(&p, b.input(&b.x), h0.view());
    assert!(rel_err(fwd.states.as_slice().unwrap(), states.as_slice().unwrap()) < 2e-5, "{what}: states");
}

#[test]
fn fast_cpu_path_matches_the_reference() {
    let seed = fresh_seed("fast_cpu_path_matches_the_reference");
    for kind in [ModelKind::Rnn, ModelKind::Srn, ModelKind::Linear, ModelKind::Lstm, ModelKind::Gru] {
        // one row; tails of 4-row and 16-column blocks; two thread chunks (≥ 16 rows)
        for &(h, b, t) in &[(1, 1, 1), (5, 3, 4), (16, 4, 6), (24, 17, 5), (32, 40, 3)] {
            check(kind, h, b, t, seed);
        }
    }
}

/// The uRNN's fast path (stage-wise FFTs, the forward trace reused by the
/// backward pass) against the reference: N = 1 (no FFT stage), 2 and 4
/// (only the first stages), 32 and 128 (the vectorised stages), with and
/// without the modReLU bias, and batches split over threads; and again
/// with the trace cap at 0, so the backward pass recomputes the FFTs. (The
/// only test in this binary that runs the uRNN, so the cap it sets for a
/// while is seen by no other.)
#[test]
fn fast_urnn_matches_the_reference() {
    let seed = fresh_seed("fast_urnn_matches_the_reference");
    for cap in [usize::MAX, 0] {
        let before = longmem::cpu_fast::set_urnn_trace_cap(cap);
        for &(h, b, t) in &[(1, 1, 1), (2, 3, 4), (4, 2, 5), (32, 5, 6), (128, 17, 4)] {
            for bias in [true, false] {
                check_with(ModelKind::Urnn, bias, h, b, t, seed);
            }
        }
        longmem::cpu_fast::set_urnn_trace_cap(before);
    }
}

/// Over a long sequence with a negative modReLU bias the gradient carried
/// back shrinks by a factor under 1 per step until, in f32, it would be
/// subnormal (slow on x86); the fast path zeroes it once it falls under
/// 2^-70. Here dL/dh0 ends between 1e-44 and 1e-24 in the f64 reference
/// (1e-38 to 1e-28 over seeds tried), where f32 could still hold it: the
/// fast path's is exactly 0 only because of the flush, and every other
/// gradient still matches the reference.
#[test]
fn fast_urnn_flushes_a_vanishing_gradient_without_changing_the_result() {
    let seed = fresh_seed("fast_urnn_flushes_a_vanishing_gradient_without_changing_the_result");
    let (i, o, n, batch, t) = (3, 2, 32, 2, 1000);
    let model = Model::new(ModelKind::Urnn, Dims { input: i, hidden: n, output: o }).unwrap();
    let mut rng = Rng::seed(seed);
    let mut p = model.init(&InitConfig::default(), &mut rng);
    p[model.layout().get("b_mod").unwrap().range()].iter_mut().for_each(|v| *v = -0.1);
    let x = Array3::from_shape_fn((t, batch, i), |_| rng.normal() as f32);
    // only the last step is scored, as in the adding problem
    let mask: Vec<f32> = (0..t * batch).map(|r| if r >= (t - 1) * batch { 1.0 } else { 0.0 }).collect();
    let y: Vec<f32> = (0..t * batch * o).map(|_| rng.normal() as f32).collect();
    let b = Batch { x, target: Target::Values(y), mask, metric_mask: vec![0.0; t * batch], loss_norm: None, tokens: None, carry_state: false, feedback: None, carry_at: None };
    let h0 = model.initial_states(&p, batch);
    // the reference in f64, where the vanishing gradient stays representable
    let p64: Vec<f64> = p.iter().map(|&v| v as f64).collect();
    let (l_ref, g_ref, _, _) = loss_grads_from::<f64>(&model, &p64, &b, h0.mapv(|v| v as f64).view(), true);
    let h0v = model.layout().get("h0").unwrap().range();
    let ref_h0 = g_ref[h0v.clone()].iter().fold(0f64, |m, v| m.max(v.abs()));
    let g_ref: Vec<f32> = g_ref.iter().map(|&v| v as f32).collect();
    let (l, g, _, _) = longmem::cpu_fast::loss_grads_from(&model, &p, &b, h0.view(), true);
    assert!(((l as f64 - l_ref) / l_ref).abs() < 1e-5, "seed {seed}: loss {l} vs {l_ref}");
    eprintln!("seed {seed}: the reference's largest |dL/dh0| is {ref_h0:e}");
    // in this window an f32 dL/dh0 would still be non-zero (a tiny normal or
    // a subnormal), so only the flush makes the fast path's exactly 0
    assert!(ref_h0 > 1e-44 && ref_h0 < 1e-24, "seed {seed}: the reference's dL/dh0 ({ref_h0:e}) is outside (1e-44, 1e-24), so this checks nothing");
    assert!(g[h0v].iter().all(|&v| v == 0.0), "seed {seed}: the fast path's dL/dh0 was not flushed to zero");
    for v in model.layout().views() {
        let e = rel_err(&g[v.range()], &g_ref[v.range()]);
        assert!(e < 1e-4, "seed {seed}: d{} relative error {e:.2e}", v.name);
    }
}

/// The vectorised, threaded softmax cross-entropy (`cpu_fast::xent`, what
/// `batch_loss_and_grad` runs for f32 class targets) against the f64
/// reference loop: loss and dL/dy, with masked rows, rows split over
/// threads, class counts off the 16-lane blocks, and logits large enough
/// that an unshifted exp would overflow.
#[test]
fn fast_cross_entropy_matches_the_f64_reference() {
    use longmem::train::loss::{batch_loss, batch_loss_and_grad, loss_and_grad_with_norm};
    let seed = fresh_seed("fast_cross_entropy_matches_the_f64_reference");
    let mut rng = Rng::seed(seed);
    for &(rows, classes, spread) in &[(1, 1, 1.0), (3, 7, 1.0), (17, 33, 4.0), (40, 1000, 3.0), (64, 10_000, 2.0), (9, 50, 200.0)] {
        let y = Array2::from_shape_fn((rows, classes), |_| (spread * rng.normal()) as f32);
        let cls: Vec<u32> = (0..rows).map(|_| rng.below(classes) as u32).collect();
        let mask: Vec<f32> = (0..rows).map(|r| if r % 5 == 3 { 0.0 } else { 1.0 }).collect();
        let batch = Batch {
            x: Array3::zeros((rows, 1, 0)),
            target: Target::Classes(cls.clone()),
            mask: mask.clone(),
            metric_mask: vec![0.0; rows],
            loss_norm: Some(0.25),
            tokens: None,
            carry_state: false,
            feedback: None,
            carry_at: None,
        };
        let (l_ref, dy_ref) = loss_and_grad_with_norm(&y.mapv(|v| v as f64), &batch.target, &mask, 0.25);
        let (l, dy) = batch_loss_and_grad(&y, &batch);
        let l_eval = batch_loss(&y, &batch);
        let what = format!("rows {rows} classes {classes} spread {spread} seed {seed}");
        for (name, got) in [("loss", l as f64), ("evaluation loss", l_eval as f64)] {
            assert!(((got - l_ref) / l_ref.abs().max(1e-6)).abs() < 1e-5, "{what}: {name} {got} vs {l_ref}");
        }
        let want: Vec<f32> = dy_ref.iter().map(|&v| v as f32).collect();
        let e = rel_err(dy.as_slice().unwrap(), &want);
        assert!(e < 1e-5, "{what}: dL/dy relative error {e:.2e}");
        for (r, &m) in mask.iter().enumerate() {
            if m == 0.0 {
                assert!(dy.row(r).iter().all(|&v| v == 0.0), "{what}: masked row {r} has a gradient");
            }
        }
    }
}
