//! The SCRN's hidden-state gradient rescaling (`--state-grad-clip`, the
//! reference code's gradInput clip): off when the threshold is above every
//! norm, an exact per-part rescaling on one step, refused by the GPU path for
//! training (evaluation ignores it).

use longmem::gpu::testing::test_context;
use longmem::models::scrn::ScrnForm;
use longmem::models::{Dims, InitConfig, Model, ModelKind, ModelOptions, ScanOptions};
use longmem::real::cast_vec;
use longmem::rng::Rng;
use longmem::tasks::{Task, TaskKind};
use longmem::train::gpu::GpuBackend;
use longmem::train::optim::OptimConfig;
use longmem::train::Backend;
use ndarray::{s, Array2, Array3};

const H: usize = 5;
const M: usize = 3;
const B: usize = 4;
const I: usize = 6;

fn model(form: ScrnForm, clip: f64) -> Model {
    let opts = ModelOptions { context: M, alpha: 0.8, scrn_form: form, state_grad_clip: clip, ..Default::default() };
    Model::build(ModelKind::Scrn, Dims { input: I, hidden: H, output: 7 }, &opts).unwrap()
}

/// Parameters (biases non-zero), inputs, states from a random h0, and
/// random dL/d(states) for every step.
fn setup(m: &Model, t_len: usize, seed: u64) -> (Vec<f64>, Array3<f64>, Array3<f64>, Array3<f64>) {
    let mut rng = Rng::seed(seed);
    let mut p: Vec<f64> = cast_vec(&m.init(&InitConfig { gain: 1.3, ..Default::default() }, &mut rng));
    for v in m.layout().views().iter().filter(|v| v.name.starts_with('b')) {
        for i in v.range() {
            p[i] = rng.normal() * 0.3;
        }
    }
    let x = Array3::from_shape_fn((t_len, B, I), |_| rng.normal());
    let h0 = Array2::from_shape_fn((B, H + M), |_| rng.normal() * 0.5);
    let states = m.forward(&p, x.view(), h0.view());
    let d = Array3::from_shape_fn((t_len, B, H + M), |_| rng.normal());
    (p, x, states, d)
}

fn grads(m: &Model, p: &[f64], x: &Array3<f64>, states: &Array3<f64>, d: &Array3<f64>) -> (Vec<f64>, Array2<f64>) {
    let mut g = vec![0.0; p.len()];
    let d0 = m.backward(p, x.view(), states.view(), d.view(), &mut g);
    (g, d0)
}

fn frobenius(a: ndarray::ArrayView2<f64>) -> f64 {
    a.iter().map(|v| v * v).sum::<f64>().sqrt()
}

#[test]
fn a_threshold_above_every_norm_changes_nothing() {
    for form in [ScrnForm::Paper, ScrnForm::Code] {
        let plain = model(form, 0.0);
        let (p, x, states, d) = setup(&plain, 6, 1);
        let (g0, d00) = grads(&plain, &p, &x, &states, &d);
        let (g1, d01) = grads(&model(form, 1e12), &p, &x, &states, &d);
        assert_eq!(g0, g1, "{form:?}: gradients");
        assert_eq!(d00, d01, "{form:?}: dL/dh0");
    }
}

/// One step, code form: dL/dh_1 and dL/ds_1 are just the given ones, each
/// rescaled to the threshold, so every gradient is the unclipped one times
/// the factor of the part it flows from.
#[test]
fn one_step_rescales_each_part_by_its_own_factor() {
    let plain = model(ScrnForm::Code, 0.0);
    let (p, x, states, d) = setup(&plain, 1, 2);
    let nh = frobenius(d.slice(s![0, .., ..H]));
    let ns = frobenius(d.slice(s![0, .., H..]));
    let c = 0.5 * nh.min(ns);
    let (kh, ks) = (c / nh, c / ns);
    let clipped = model(ScrnForm::Code, c);
    let (g0, d00) = grads(&plain, &p, &x, &states, &d);
    let (g1, d01) = grads(&clipped, &p, &x, &states, &d);
    let layout = plain.layout();
    let mut checked = 0;
    for v in layout.views() {
        for (k, i) in v.range().enumerate() {
            let factor = match v.name.as_str() {
                "w_rec" | "w_ctx" => kh,
                // A (fast rows) over B (slow rows)
                "w_in" => if k / I < H { kh } else { ks },
                "b" => if k < H { kh } else { ks },
                _ => continue,
            };
            let want = g0[i] * factor;
            assert!((g1[i] - want).abs() <= 1e-12 * want.abs().max(1e-9), "{}[{k}]: {} vs {want}", v.name, g1[i]);
            checked += 1;
        }
    }
    assert_eq!(checked, (H + M) * I + H * H + H * M + H + M);
    // dL/dh0 of the fast units flows only from dL/dh_1
    for b in 0..B {
        for i in 0..H {
            let want = d00[[b, i]] * kh;
            assert!((d01[[b, i]] - want).abs() <= 1e-12 * want.abs().max(1e-9), "dh0[{b},{i}]");
        }
    }
    assert!(g0.iter().zip(&g1).any(|(a, b)| a != b), "the clip changed nothing");
}

/// Over many steps every step's dL/dh_t passed back is at most the
/// threshold, so with a tiny one dL/dh0 is tiny too (it is R^T applied to
/// a rescaled, sigmoid-damped dL/dh_1).
#[test]
fn a_small_threshold_bounds_what_reaches_the_start() {
    for form in [ScrnForm::Paper, ScrnForm::Code] {
        let plain = model(form, 0.0);
        let (p, x, states, d) = setup(&plain, 8, 3);
        let c = 1e-3;
        let (_, d00) = grads(&plain, &p, &x, &states, &d);
        let (_, d01) = grads(&model(form, c), &p, &x, &states, &d);
        // ‖R‖₂ ≤ ‖R‖_F; σ' ≤ 1/4; the context part adds α·c and ‖P‖_F·c/4
        let fro = |name: &str| {
            let v = plain.layout().get(name).unwrap();
            p[v.range()].iter().map(|w| w * w).sum::<f64>().sqrt()
        };
        let bound_h = fro("w_rec") * c / 4.0;
        let n_h = frobenius(d01.slice(s![.., ..H]));
        assert!(n_h <= bound_h * (1.0 + 1e-12), "{form:?}: dL/dh0 norm {n_h} above {bound_h}");
        let bound_s = 0.8 * c + fro("w_ctx") * c / 4.0;
        let n_s = frobenius(d01.slice(s![.., H..]));
        assert!(n_s <= bound_s * (1.0 + 1e-12), "{form:?}: dL/ds0 norm {n_s} above {bound_s}");
        assert!(frobenius(d00.view()) > 100.0 * frobenius(d01.view()), "{form:?}: the unclipped dL/dh0 should be far larger");
    }
}

/// Training on the GPU is refused with a clear error; evaluating (no
/// gradients) works and agrees with the model without the option.
#[test]
fn the_gpu_path_refuses_to_train_with_it_but_evaluates() {
    let Some(ctx) = test_context("scrn_state_clip") else { return };
    let task = Task::new(TaskKind::Copy, 3).unwrap();
    let dims = Dims { input: task.input_width(), hidden: H, output: task.output_width() };
    let build = |clip: f64| {
        let opts = ModelOptions { context: M, state_grad_clip: clip, ..Default::default() };
        Model::build(ModelKind::Scrn, dims, &opts).unwrap()
    };
    let mut rng = Rng::seed(4);
    let p = build(0.0).init(&InitConfig::default(), &mut rng);
    let batch = task.batch(B, &mut rng);
    let mut clipped = GpuBackend::new(ctx.clone(), build(1.0), &p, ScanOptions::default()).unwrap();
    let err = clipped.gradients(&batch).expect_err("the GPU path must refuse to train with --state-grad-clip");
    assert!(err.to_string().contains("--state-grad-clip"), "{err}");
    let opt = OptimConfig::default();
    assert!(clipped.train_step(&batch, &opt.hyper(opt.lr, 1)).is_err());
    let (l1, y1) = clipped.evaluate(&batch).unwrap();
    let (l0, y0) = GpuBackend::new(ctx, build(0.0), &p, ScanOptions::default()).unwrap().evaluate(&batch).unwrap();
    assert_eq!(l1, l0);
    assert_eq!(y1, y0);
}
