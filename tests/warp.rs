//! WARP: finite-difference gradients of the CPU reference in f64 for every
//! parameter group, θ_t = θ_0 at the start (A = I, B = 0), the tangent map,
//! and the GPU scan, decoding and training step against the CPU.

use longmem::gpu::testing::{assert_grads_close, assert_value_close, fresh_seed, grads_f64, loss_f64, test_context};
use longmem::models::warp::{RootAct, Theta0};
use longmem::models::{Dims, InitConfig, Model, ModelKind, ModelOptions, ScanMode, ScanOptions, StepAt};
use longmem::real::cast_vec;
use longmem::rng::Rng;
use longmem::tasks::dynamics::System;
use longmem::tasks::{Batch, Target};
use longmem::train::cpu::{loss_grads, CpuBackend};
use longmem::train::gpu::GpuBackend;
use longmem::train::loss::batch_loss_and_grad;
use longmem::train::optim::{OptimConfig, OptimKind};
use longmem::train::Backend;
use ndarray::{Array2, Array3};

fn build(input: usize, width: usize, depth: usize, output: usize, act: RootAct, theta0: Theta0) -> Model {
    build_phys(input, width, depth, output, act, theta0, None)
}

fn build_phys(input: usize, width: usize, depth: usize, output: usize, act: RootAct, theta0: Theta0, phys: Option<System>) -> Model {
    build_full(input, width, depth, output, act, theta0, phys, false)
}

#[allow(clippy::too_many_arguments)]
fn build_full(input: usize, width: usize, depth: usize, output: usize, act: RootAct, theta0: Theta0, phys: Option<System>, root_x: bool) -> Model {
    let opts = ModelOptions { root_depth: depth, root_act: act, theta0, warp_phys: phys, root_input_x: root_x, ..Default::default() };
    Model::build(ModelKind::Warp, Dims { input, hidden: width, output }, &opts).unwrap()
}

/// A regression batch of random inputs and targets, every row counted.
fn batch(t: usize, b: usize, input: usize, output: usize, rng: &mut Rng) -> Batch {
    let x = Array3::from_shape_fn((t, b, input), |_| rng.normal() as f32);
    let y: Vec<f32> = (0..t * b * output).map(|_| rng.normal() as f32).collect();
    Batch { x, target: Target::Values(y), mask: vec![1.0; t * b], metric_mask: vec![0.0; t * b], loss_norm: None, tokens: None, carry_state: false, feedback: None, carry_at: None }
}

/// Parameters away from the start (A = I, B = 0), so every term of the
/// scan's gradient is exercised.
fn perturbed(model: &Model, rng: &mut Rng, a_noise: f64, b_noise: f64) -> Vec<f32> {
    let mut p = model.init(&InitConfig::default(), rng);
    let l = model.layout();
    for i in l.get("A").unwrap().range() {
        p[i] += (rng.normal() * a_noise) as f32;
    }
    for i in l.get("B").unwrap().range() {
        p[i] = (rng.normal() * b_noise) as f32;
    }
    p
}

fn loss_at(model: &Model, p: &[f64], batch: &Batch) -> f64 {
    let x = batch.x.mapv(|v| v as f64);
    if let (Some(fb), Model::Warp(w)) = (&batch.feedback, model) {
        let tr = w.forward_ar(p, x.view(), fb);
        return batch_loss_and_grad(&tr.y, batch).0;
    }
    let h0 = Array2::zeros((batch.batch(), model.state_width()));
    let states = model.forward(p, x.view(), h0.view());
    let y = model.readout_forward_x(p, states.view(), Some(x.view()));
    batch_loss_and_grad(&y, batch).0
}

fn gradcheck(model: &Model, t: usize, b: usize) {
    gradcheck_fed(model, t, b, false);
}

/// `fed`: about half the inputs are the model's own fed-back predictions.
fn gradcheck_fed(model: &Model, t: usize, b: usize, fed: bool) {
    gradcheck_target(model, t, b, fed, false);
}

/// `gaussian`: targets of the input width against means and sds.
fn gradcheck_target(model: &Model, t: usize, b: usize, fed: bool, gaussian: bool) {
    let mut rng = Rng::seed(11);
    let d = model.dims();
    let p: Vec<f64> = cast_vec(&perturbed(model, &mut rng, 0.05, 0.3));
    let mut batch = batch(t, b, d.input, if gaussian { d.output / 2 } else { d.output }, &mut rng);
    if gaussian {
        let Target::Values(v) = batch.target.clone() else { unreachable!() };
        batch.target = Target::Gaussian(v);
    }
    if fed {
        let fb: Vec<f32> = (0..t * b).map(|r| if r >= b && rng.uniform() < 0.5 { 1.0 } else { 0.0 }).collect();
        assert!(fb.iter().filter(|&&v| v == 1.0).count() >= 2, "the check needs fed-back rows");
        batch.feedback = Some(fb);
    }
    let (_, grads, _) = loss_grads::<f64>(model, &p, &batch);
    let eps = 1e-5;
    let mut worst = 0.0f64;
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..p.len() {
        let mut q = p.clone();
        q[i] = p[i] + eps;
        let lp = loss_at(model, &q, &batch);
        q[i] = p[i] - eps;
        let lm = loss_at(model, &q, &batch);
        let fd = (lp - lm) / (2.0 * eps);
        let err = (fd - grads[i]).abs() / (fd.abs() + grads[i].abs()).max(1e-5);
        let name = &model.layout().views().iter().find(|v| v.range().contains(&i)).unwrap().name;
        assert!(err < 1e-5, "d{name}[{i}]: analytic {} vs numeric {fd} (rel err {err})", grads[i]);
        if grads[i].abs() > 1e-8 {
            seen.insert(name.clone());
        }
        worst = worst.max(err);
    }
    // every group has a gradient that is not zero, so the check saw it work
    for v in model.layout().views() {
        assert!(seen.contains(&v.name), "no non-zero gradient in {}", v.name);
    }
    eprintln!("warp: worst relative error {worst:.2e} over {} parameters", p.len());
}

#[test]
fn gradients_match_finite_differences_learned_theta0() {
    // depth 2: an inner hidden-to-hidden layer too
    gradcheck(&build(2, 3, 2, 2, RootAct::Tanh, Theta0::Learned), 5, 3);
}

#[test]
fn gradients_match_finite_differences_hypernetwork_theta0() {
    gradcheck(&build(3, 4, 1, 2, RootAct::Tanh, Theta0::Hyper), 4, 2);
}

#[test]
fn gradients_match_finite_differences_with_fed_back_predictions() {
    gradcheck_fed(&build(2, 3, 2, 2, RootAct::Tanh, Theta0::Hyper), 6, 3, true);
    gradcheck_fed(&build(3, 4, 1, 3, RootAct::Tanh, Theta0::Learned), 5, 2, true);
}

#[test]
fn gaussian_nll_gradients_match_finite_differences() {
    // outputs = 2 × inputs: means then raw sds; plain and fed back
    for fed in [false, true] {
        let model = build(2, 3, 1, 4, RootAct::Tanh, Theta0::Hyper);
        gradcheck_target(&model, 5, 3, fed, true);
    }
}

#[test]
fn root_reading_its_input_gradients_match_finite_differences() {
    for fed in [false, true] {
        gradcheck_fed(&build_full(2, 3, 2, 2, RootAct::Tanh, Theta0::Hyper, None, true), 5, 3, fed);
    }
    gradcheck_fed(&build_full(2, 3, 1, 2, RootAct::Tanh, Theta0::Learned, Some(System::Lotka), true), 4, 2, true);
}

#[test]
fn gpu_matches_cpu_root_reading_its_input() {
    let Some(ctx) = test_context("warp") else { return };
    let model = build_full(3, 5, 2, 3, RootAct::Tanh, Theta0::Hyper, None, true);
    let mut rng = Rng::seed(fresh_seed("warp"));
    let params = perturbed(&model, &mut rng, 0.3 / (model.state_width() as f64).sqrt(), 0.2);
    let mut gpu = GpuBackend::new(ctx, model.clone(), &params, ScanOptions::default()).unwrap();
    let mut cpu = CpuBackend::new(model.clone(), params).unwrap();
    let bt = batch(6, 4, 3, 3, &mut rng);
    let (_, y_gpu) = gpu.evaluate(&bt).unwrap();
    let (_, y_cpu) = cpu.evaluate(&bt).unwrap();
    assert!(rel_err(&y_gpu, &y_cpu) < 1e-5, "decoded outputs rel err {}", rel_err(&y_gpu, &y_cpu));
    let (_, g_gpu) = gpu.gradients(&bt).unwrap();
    let (_, g_cpu) = cpu.gradients(&bt).unwrap();
    for v in model.layout().views() {
        let e = rel_err(&g_gpu[v.range()], &g_cpu[v.range()]);
        assert!(e < 1e-4, "root_x: grad {} rel err {e}", v.name);
    }
}

/// The root reading its (fed) inputs, autoregressive on the GPU: the
/// decoding's dL/dx joins the fed inputs' gradient.
#[test]
fn gpu_matches_cpu_root_reading_fed_back_inputs() {
    let Some(ctx) = test_context("warp") else { return };
    let model = build_full(3, 5, 2, 3, RootAct::Tanh, Theta0::Hyper, None, true);
    let mut rng = Rng::seed(fresh_seed("warp"));
    let params = perturbed(&model, &mut rng, 0.3 / (model.state_width() as f64).sqrt(), 0.2);
    let mut gpu = GpuBackend::new(ctx, model.clone(), &params, ScanOptions::default()).unwrap();
    let mut cpu = CpuBackend::new(model.clone(), params.clone()).unwrap();
    let mut bt = batch(6, 4, 3, 3, &mut rng);
    bt.feedback = Some((0..24).map(|r| if r >= 4 && rng.uniform() < 0.5 { 1.0 } else { 0.0 }).collect());
    let (_, y_gpu) = gpu.evaluate(&bt).unwrap();
    let (_, y_cpu) = cpu.evaluate(&bt).unwrap();
    assert!(rel_err(&y_gpu, &y_cpu) < 1e-5, "decoded outputs rel err {}", rel_err(&y_gpu, &y_cpu));
    let (_, g_gpu) = gpu.gradients(&bt).unwrap();
    let (_, g_cpu) = cpu.gradients(&bt).unwrap();
    assert_grads_close("root_x fed", &model, &g_gpu, &g_cpu, &grads_f64(&model, &params, &bt));
}

/// WARP-Phys on the GPU (fed-back states through the integration step):
/// states, outputs and every gradient against the CPU, both systems.
#[test]
fn gpu_matches_cpu_warp_phys() {
    let Some(ctx) = test_context("warp") else { return };
    let mut rng = Rng::seed(fresh_seed("warp"));
    for sys in [System::Msd, System::Lotka] {
        let model = build_phys(2, 5, 1, 2, RootAct::Tanh, Theta0::Hyper, Some(sys));
        let params = perturbed(&model, &mut rng, 0.3 / (model.state_width() as f64).sqrt(), 0.05);
        let mut gpu = GpuBackend::new(ctx.clone(), model.clone(), &params, ScanOptions::default()).unwrap();
        let mut cpu = CpuBackend::new(model.clone(), params.clone()).unwrap();
        let mut bt = batch(7, 3, 2, 2, &mut rng);
        bt.feedback = Some((0..21).map(|r| if r >= 3 && rng.uniform() < 0.5 { 1.0 } else { 0.0 }).collect());
        let label = format!("phys {sys:?}");
        let (l_gpu, y_gpu) = gpu.evaluate(&bt).unwrap();
        let (l_cpu, y_cpu) = cpu.evaluate(&bt).unwrap();
        assert!(rel_err(&y_gpu, &y_cpu) < 1e-5, "{label}: decoded outputs rel err {}", rel_err(&y_gpu, &y_cpu));
        assert_value_close(&format!("{label}: loss"), l_gpu as f64, l_cpu as f64, loss_f64(&model, &params, &bt), 1e-5);
        let (_, g_gpu) = gpu.gradients(&bt).unwrap();
        let (_, g_cpu) = cpu.gradients(&bt).unwrap();
        assert_grads_close(&label, &model, &g_gpu, &g_cpu, &grads_f64(&model, &params, &bt));
    }
}

#[test]
fn warp_phys_gradients_match_finite_differences() {
    for sys in [System::Msd, System::Lotka] {
        gradcheck_fed(&build_phys(2, 3, 1, 2, RootAct::Tanh, Theta0::Hyper, Some(sys)), 5, 3, true);
    }
}

#[test]
fn rollout_is_the_forward_with_every_input_after_the_lookback_fed_back() {
    rollout_matches(build(3, 6, 1, 3, RootAct::Tanh, Theta0::Hyper), true);
    rollout_matches(build_phys(2, 5, 1, 2, RootAct::Tanh, Theta0::Learned, Some(System::Lotka)), false);
}

fn rollout_matches(model: Model, plain_too: bool) {
    let Model::Warp(w) = model else { unreachable!() };
    let c = w.dims.input;
    let mut rng = Rng::seed(21);
    let model = Model::Warp(w.clone());
    let p: Vec<f64> = cast_vec(&perturbed(&model, &mut rng, 0.05, 0.3));
    let (l, h, b) = (5, 4, 3);
    let t = l + h - 1;
    // positive states: Lotka-Volterra populations
    let x = Array3::from_shape_fn((t, b, c), |_| 0.5 + rng.uniform());
    let fb: Vec<f32> = (0..t * b).map(|r| if r / b >= l { 1.0 } else { 0.0 }).collect();
    let tr = w.forward_ar(&p, x.view(), &fb);
    let pred = w.rollout(&p, x.slice(ndarray::s![..l, .., ..]), h, t);
    for k in 0..h {
        for j in 0..b {
            for ch in 0..c {
                let want = tr.y[[(l - 1 + k) * b + j, ch]];
                assert!((pred[[k, j, ch]] - want).abs() < 1e-12, "step {k}: rollout {} vs forward {want}", pred[[k, j, ch]]);
            }
        }
    }
    if !plain_too {
        return;
    }
    // and with no feedback the autoregressive forward is the plain scan and decoding
    let none = vec![0.0; t * b];
    let tr = w.forward_ar(&p, x.view(), &none);
    let h0 = Array2::zeros((b, w.state_width()));
    let st = model.forward(&p, x.view(), h0.view());
    assert_eq!(tr.states, st);
    assert_eq!(tr.y, model.readout_forward(&p, st.view()));
}

#[test]
fn at_the_start_every_state_is_theta0() {
    for theta0 in [Theta0::Learned, Theta0::Hyper] {
        let model = build(3, 8, 1, 3, RootAct::Relu, theta0);
        let mut rng = Rng::seed(5);
        let p = model.init(&InitConfig::default(), &mut rng);
        let b = batch(20, 4, 3, 3, &mut rng);
        let h0 = Array2::zeros((4, model.state_width()));
        let st = model.forward(&p, b.x.view(), h0.view());
        let first = st.slice(ndarray::s![0, .., ..]).to_owned();
        assert!(first.iter().any(|v| *v != 0.0), "{theta0:?}: θ_0 is all zeros");
        for t in 1..=20 {
            assert_eq!(st.slice(ndarray::s![t, .., ..]), first, "{theta0:?}: θ_{t} differs from θ_0");
        }
        // and once B moves, the state follows the inputs
        let mut p2 = p.clone();
        p2[model.layout().offset("B")] = 0.5;
        let st2 = model.forward(&p2, b.x.view(), h0.view());
        assert_ne!(st2.slice(ndarray::s![20, .., ..]), first.view());
    }
}

#[test]
fn hypernetwork_theta0_depends_on_the_first_input() {
    let model = build(2, 5, 1, 2, RootAct::Tanh, Theta0::Hyper);
    let mut rng = Rng::seed(8);
    let p = model.init(&InitConfig::default(), &mut rng);
    let b = batch(3, 2, 2, 2, &mut rng);
    let h0 = Array2::zeros((2, model.state_width()));
    let st = model.forward(&p, b.x.view(), h0.view());
    assert_ne!(st.slice(ndarray::s![0, 0, ..]), st.slice(ndarray::s![0, 1, ..]), "two different x_0 gave one θ_0");
}

#[test]
fn tangent_map_is_a() {
    let model = build(2, 4, 1, 2, RootAct::Relu, Theta0::Learned);
    let mut rng = Rng::seed(3);
    let p: Vec<f64> = cast_vec(&perturbed(&model, &mut rng, 0.2, 0.1));
    let s = model.state_width();
    let q = Array2::from_shape_fn((s, 3), |_| rng.normal());
    let z = vec![0.0; s];
    let at = StepAt { pre: &z, prev: &z, next: &z };
    let got = model.tangent(&p, &at, q.view());
    let a = Array2::from_shape_vec((s, s), p[model.layout().get("A").unwrap().range()].to_vec()).unwrap();
    let want = a.dot(&q);
    let err = (&got - &want).mapv(f64::abs).fold(0.0f64, |m, v| m.max(*v));
    assert!(err < 1e-12, "J·Q differs from A·Q by {err}");
}

fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum::<f64>().sqrt();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum::<f64>().sqrt().max(1e-12);
    num / den
}

/// GPU scan, decoding, gradients and three Adam steps against the CPU.
#[allow(clippy::too_many_arguments)]
fn gpu_matches_cpu(input: usize, width: usize, depth: usize, output: usize, act: RootAct, theta0: Theta0, t: usize, b: usize) {
    gpu_matches_cpu_with(input, width, depth, output, act, theta0, t, b, false, ScanMode::Step, false);
    gpu_matches_cpu_with(input, width, depth, output, act, theta0, t, b, false, ScanMode::Parallel, false);
}

/// `gaussian`: the Gaussian NLL (outputs = 2 × targets) instead of MSE;
/// `fed`: about half the rows after the first step take the model's own
/// prediction as input (autoregressive training).
#[allow(clippy::too_many_arguments)]
fn gpu_matches_cpu_with(input: usize, width: usize, depth: usize, output: usize, act: RootAct, theta0: Theta0, t: usize, b: usize, gaussian: bool, scan: ScanMode, fed: bool) {
    let Some(ctx) = test_context("warp") else { return };
    let model = build(input, width, depth, output, act, theta0);
    let mut rng = Rng::seed(fresh_seed("warp"));
    // a Gaussian head near its sd floor (1e-3) makes losses ~e²/σ² ~ 1e4 whose
    // f32 rounding passes any fixed tolerance: keep B's start moderate there,
    // and where predictions are fed back (a large B lets them run away)
    let b_noise = if gaussian || fed { 0.05 } else { 0.2 };
    let params = perturbed(&model, &mut rng, 0.3 / (model.state_width() as f64).sqrt(), b_noise);
    let label = format!("warp {act:?} {theta0:?} d={input} w={width} depth={depth} o={output} T={t} B={b} {scan:?}{}", if fed { " fed" } else { "" });
    let mut gpu = GpuBackend::new(ctx, model.clone(), &params, ScanOptions { mode: scan, ..Default::default() }).unwrap();
    let mut cpu = CpuBackend::new(model.clone(), params.clone()).unwrap();
    let targets = if gaussian { output / 2 } else { output };
    let gauss = |mut bt: Batch, rng: &mut Rng| {
        if gaussian {
            let Target::Values(v) = bt.target.clone() else { unreachable!() };
            bt.target = Target::Gaussian(v);
        }
        if fed {
            bt.feedback = Some((0..t * b).map(|r| if r >= b && rng.uniform() < 0.5 { 1.0 } else { 0.0 }).collect());
        }
        bt
    };
    let bt = gauss(batch(t, b, input, targets, &mut rng), &mut rng);
    let s_gpu = gpu.states(&bt).unwrap();
    let s_cpu = match (&bt.feedback, &model) {
        (Some(f), Model::Warp(w)) => w.forward_ar(&params, bt.x.view(), f).states,
        _ => model.forward(&params, bt.x.view(), Array2::zeros((b, model.state_width())).view()),
    };
    let e = rel_err(&s_gpu, s_cpu.as_slice().unwrap());
    assert!(e < 1e-5, "{label}: states rel err {e}");
    let (l_gpu, y_gpu) = gpu.evaluate(&bt).unwrap();
    let (l_cpu, y_cpu) = cpu.evaluate(&bt).unwrap();
    let e = rel_err(&y_gpu, &y_cpu);
    assert!(e < 1e-5, "{label}: decoded outputs rel err {e}");
    assert_value_close(&format!("{label}: loss"), l_gpu as f64, l_cpu as f64, loss_f64(&model, &params, &bt), 1e-5);
    let (_, g_gpu) = gpu.gradients(&bt).unwrap();
    let (_, g_cpu) = cpu.gradients(&bt).unwrap();
    assert_grads_close(&label, &model, &g_gpu, &g_cpu, &grads_f64(&model, &params, &bt));
    // Adam steps, each from the GPU's state on both sides so rounding does
    // not compound (ε 1e-4: a rounding-level gradient would jump ±lr at 1e-8)
    let opt = OptimConfig { kind: OptimKind::Adam, lr: 1e-3, clip: 1.0, eps: 1e-4, ..Default::default() };
    for step in 1..=3 {
        let bt = gauss(batch(t, b, input, targets, &mut rng), &mut rng);
        let (m, v) = gpu.optim_state().unwrap();
        cpu.load(&gpu.params().unwrap(), &m, &v).unwrap();
        let l64 = loss_f64(&model, &gpu.params().unwrap(), &bt);
        let h = opt.hyper(opt.lr, step);
        let a = gpu.train_step(&bt, &h).unwrap();
        let c = cpu.train_step(&bt, &h).unwrap();
        assert_value_close(&format!("{label}: step {step} loss"), a.loss as f64, c.loss as f64, l64, 1e-5);
        let e = rel_err(&gpu.params().unwrap(), &cpu.params().unwrap());
        assert!(e < 1e-5, "{label}: params after step {step} rel err {e}");
    }
}

#[test]
fn gpu_matches_cpu_learned_theta0_relu() {
    // D = 2·9 + 9·3 + 3 = 48 and 9·5 = 45 rows: neither a multiple of 64
    gpu_matches_cpu(3, 9, 1, 3, RootAct::Relu, Theta0::Learned, 9, 5);
}

#[test]
fn gpu_matches_cpu_hypernetwork_tanh_deep_root() {
    gpu_matches_cpu(2, 6, 2, 4, RootAct::Tanh, Theta0::Hyper, 7, 3);
}

#[test]
fn gpu_matches_cpu_gaussian_nll() {
    gpu_matches_cpu_with(3, 7, 1, 6, RootAct::Tanh, Theta0::Hyper, 6, 4, true, ScanMode::Step, false);
}

/// The doubling stages at the edges of their counts: T + 1 (forward) and T
/// (backward) at, just under and just over powers of two.
#[test]
fn parallel_scan_matches_cpu_at_power_of_two_edges() {
    for t in [2, 3, 4, 7, 8, 9, 16] {
        gpu_matches_cpu_with(2, 4, 1, 2, RootAct::Tanh, Theta0::Hyper, t, 3, false, ScanMode::Parallel, false);
    }
}

/// Autoregressive training on the GPU: fed-back predictions, through the
/// step-by-step scan and decoding and their backward, with MSE and with the
/// Gaussian head (whose means are fed back), and a one-step sequence.
#[test]
fn gpu_matches_cpu_with_fed_back_predictions() {
    gpu_matches_cpu_with(3, 9, 1, 3, RootAct::Relu, Theta0::Learned, 9, 5, false, ScanMode::Auto, true);
    gpu_matches_cpu_with(3, 6, 2, 6, RootAct::Tanh, Theta0::Hyper, 7, 3, true, ScanMode::Auto, true);
    gpu_matches_cpu_with(2, 4, 1, 2, RootAct::Tanh, Theta0::Learned, 1, 2, false, ScanMode::Auto, true);
}

#[test]
fn gpu_matches_cpu_one_step_output_wider_than_root() {
    gpu_matches_cpu(4, 3, 1, 7, RootAct::Tanh, Theta0::Learned, 1, 2);
}

/// The recurrence is linear in θ: the Lyapunov spectrum is log|eig(A)|,
/// here an A = O · diag(moduli) · Oᵀ with known moduli.
#[test]
fn lyapunov_spectrum_is_log_moduli_of_a() {
    use longmem::lyapunov::{cpu::spectrum, Drive, LyapInput, LyapunovConfig};
    let model = build(2, 2, 1, 2, RootAct::Relu, Theta0::Learned);
    let n = model.state_width(); // 2·2 + 2·2 + 2 = 10
    let mut rng = Rng::seed(4);
    let mut p = model.init(&InitConfig::default(), &mut rng);
    let o = longmem::cpu::random_orthogonal(n, &mut rng);
    let moduli: Vec<f64> = (0..n).map(|i| 1.05 - 0.07 * i as f64).collect();
    let off = model.layout().offset("A");
    for i in 0..n {
        for j in 0..n {
            p[off + i * n + j] = (0..n).map(|k| o[i * n + k] * moduli[k] * o[j * n + k]).sum::<f64>() as f32;
        }
    }
    let cfg = LyapunovConfig { k: n, steps: 2000, trajectories: 1, transient: 10, tangent_transient: 20, input: LyapInput::Noise, ..Default::default() };
    let s = spectrum(&model, &p, &Drive { cfg: &cfg, task: None, input_width: 2 }, &cfg).unwrap();
    for (got, m) in s.exponents.iter().zip(&moduli) {
        assert!((got - m.ln()).abs() < 1e-3, "exponents {:?} vs ln {moduli:?}", s.exponents);
    }
}
