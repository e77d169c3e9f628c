//! The uRNN's CPU reference: finite-difference gradients in f64 for every
//! parameter group, the tangent map, unitarity after training, Lyapunov
//! exponents of the linear (identity-modReLU) recurrence, and the
//! copying-memory behaviour the paper is about.

use longmem::lyapunov::{cpu::spectrum, Drive, LyapInput, LyapunovConfig};
use longmem::models::urnn::MODRELU_EPS;
use longmem::models::{Dims, InitConfig, Model, ModelKind, ModelOptions, StepAt};
use longmem::real::cast_vec;
use longmem::rng::Rng;
use longmem::tasks::{Task, TaskKind};
use longmem::train::cpu::{loss_grads, CpuBackend};
use longmem::train::optim::{OptimConfig, OptimKind};
use longmem::train::Backend;
use ndarray::Array2;

fn urnn(n: usize, task: &Task, bias: bool) -> Model {
    let dims = Dims { input: task.input_width(), hidden: n, output: task.output_width() };
    Model::build(ModelKind::Urnn, dims, &ModelOptions { bias, ..Default::default() }).unwrap()
}

/// Every parameter's gradient (θ's, reflections, modReLU bias, V, U, h0)
/// against central differences of the loss, from the learned h0.
fn gradcheck(n: usize, kind: TaskKind, t: usize, batch: usize, bias: bool, every: usize) {
    let task = Task::new(kind, t).unwrap();
    let model = urnn(n, &task, bias);
    let mut rng = Rng::seed(11 + n as u64);
    let mut p: Vec<f64> = cast_vec(&model.init(&InitConfig::default(), &mut rng));
    // modReLU biases of both signs, and a larger h0, so every branch and term is exercised
    for name in ["b_mod", "b_out"] {
        if let Ok(v) = model.layout().get(name) {
            for i in v.range() {
                p[i] = rng.normal() * 0.2;
            }
        }
    }
    for i in model.layout().get("h0").unwrap().range() {
        p[i] = rng.normal() * 0.5;
    }
    let b = task.batch(batch, &mut rng);
    let (_, grads, _) = loss_grads::<f64>(&model, &p, &b);
    let eps = 1e-6;
    let mut worst = 0.0f64;
    for i in (0..p.len()).step_by(every) {
        let mut q = p.clone();
        q[i] = p[i] + eps;
        let lp = loss_grads::<f64>(&model, &q, &b).0;
        q[i] = p[i] - eps;
        let lm = loss_grads::<f64>(&model, &q, &b).0;
        let fd = (lp - lm) / (2.0 * eps);
        let err = (fd - grads[i]).abs() / (fd.abs() + grads[i].abs()).max(1e-6);
        let name = &model.layout().views().iter().find(|v| v.range().contains(&i)).unwrap().name;
        assert!(err < 1e-5, "N={n} {kind:?}: d{name}[{i}] analytic {} vs numeric {fd} (rel err {err})", grads[i]);
        worst = worst.max(err);
    }
    eprintln!("uRNN N={n} {kind:?} bias={bias}: worst relative error {worst:.2e} over {} parameters", p.len());
}

#[test]
fn gradients_match_finite_differences() {
    gradcheck(4, TaskKind::Adding, 5, 3, true, 1);
    gradcheck(8, TaskKind::Copy, 2, 2, true, 1);
    gradcheck(2, TaskKind::Adding, 4, 2, false, 1);
    // big enough that the CPU reference splits the batch over threads (every 7th parameter)
    gradcheck(16, TaskKind::Adding, 20, 64, true, 7);
}

#[test]
fn tangent_map_matches_finite_differences_of_the_step() {
    let task = Task::new(TaskKind::Adding, 4).unwrap();
    let model = urnn(8, &task, true);
    let mut rng = Rng::seed(3);
    let mut p: Vec<f64> = cast_vec(&model.init(&InitConfig::default(), &mut rng));
    for i in model.layout().get("b_mod").unwrap().range() {
        p[i] = rng.normal() * 0.2;
    }
    let s = model.state_width();
    let x = ndarray::Array3::from_shape_fn((1, 1, 2), |_| rng.normal());
    let pre = model.project(&p, x.view());
    let prev: Vec<f64> = (0..s).map(|_| rng.normal() * 0.4).collect();
    let step = |h: &[f64]| model.forward(&p, x.view(), Array2::from_shape_vec((1, s), h.to_vec()).unwrap().view()).slice(ndarray::s![1, 0, ..]).to_vec();
    let next = step(&prev);
    let q = Array2::from_shape_fn((s, 3), |_| rng.normal());
    let at = StepAt { pre: pre.row(0).to_slice().unwrap(), prev: &prev, next: &next };
    let jq = model.tangent(&p, &at, q.view());
    let eps = 1e-6;
    for c in 0..3 {
        let plus: Vec<f64> = prev.iter().zip(q.column(c)).map(|(a, b)| a + eps * b).collect();
        let minus: Vec<f64> = prev.iter().zip(q.column(c)).map(|(a, b)| a - eps * b).collect();
        let (hp, hm) = (step(&plus), step(&minus));
        for i in 0..s {
            let fd = (hp[i] - hm[i]) / (2.0 * eps);
            assert!((fd - jq[[i, c]]).abs() < 1e-7 * (1.0 + fd.abs()), "J q [{i},{c}]: {} vs {fd}", jq[[i, c]]);
        }
    }
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// W is unitary by construction: norms survive many optimizer updates of
/// θ and the reflection vectors (checked in f32 on the trained parameters).
#[test]
fn recurrence_stays_unitary_after_training() {
    let task = Task::new(TaskKind::Copy, 5).unwrap();
    let model = urnn(16, &task, true);
    let mut rng = Rng::seed(8);
    let p0 = model.init(&InitConfig::default(), &mut rng);
    let mut be = CpuBackend::new(model.clone(), p0.clone()).unwrap();
    let opt = OptimConfig { kind: OptimKind::Rmsprop, lr: 1e-2, clip: 0.0, ..Default::default() };
    for step in 1..=200 {
        be.train_step(&task.batch(8, &mut rng), &opt.hyper(opt.lr, step)).unwrap();
    }
    let p = be.params().unwrap();
    let Model::Urnn(u) = &model else { unreachable!() };
    let th = model.layout().get("theta").unwrap().range();
    let moved = p[th.clone()].iter().zip(&p0[th]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(moved > 0.05, "training should move θ (max change {moved})");
    for _ in 0..10 {
        let v: Vec<f32> = (0..32).map(|_| rng.normal() as f32).collect();
        let w = u.apply_recurrence(&p, &v);
        let (a, b) = (norm(&cast_vec(&v)), norm(&cast_vec(&w)));
        assert!(((b - a) / a).abs() < 1e-5, "‖Wv‖ = {b} vs ‖v‖ = {a}");
    }
}

/// With modReLU's bias at ε the nonlinearity is the identity: the
/// recurrence is W alone and every Lyapunov exponent is 0.
#[test]
fn linear_urnn_has_all_lyapunov_exponents_zero() {
    let task = Task::new(TaskKind::Adding, 4).unwrap();
    let model = urnn(8, &task, true);
    let mut p = model.init(&InitConfig::default(), &mut Rng::seed(4));
    for i in model.layout().get("b_mod").unwrap().range() {
        p[i] = MODRELU_EPS as f32;
    }
    let cfg = LyapunovConfig { k: 16, steps: 200, trajectories: 2, input: LyapInput::Noise, ..Default::default() };
    let s = spectrum(&model, &p, &Drive { cfg: &cfg, task: None, input_width: 2 }, &cfg).unwrap();
    for e in &s.exponents {
        assert!(e.abs() < 1e-9, "exponents {:?}", s.exponents);
    }
    // with a real modReLU bias the map contracts
    for i in model.layout().get("b_mod").unwrap().range() {
        p[i] = -0.05;
    }
    let s = spectrum(&model, &p, &Drive { cfg: &cfg, task: None, input_width: 2 }, &cfg).unwrap();
    assert!(s.exponents[0] < -1e-4, "λ1 = {}", s.exponents[0]);
    assert!((s.sum - s.mean_log_det.unwrap()).abs() < 1e-6, "sum rule: {} vs {:?}", s.sum, s.mean_log_det);
}

/// Mean training loss over the last 50 of `steps` RMSprop steps on the copying task.
fn copy_loss(kind: ModelKind, hidden: usize, t: usize, steps: u64, clip: f64, seed: u64) -> f64 {
    let task = Task::new(TaskKind::Copy, t).unwrap();
    let dims = Dims { input: task.input_width(), hidden, output: task.output_width() };
    let model = Model::new(kind, dims).unwrap();
    let mut rng = Rng::seed(seed);
    let p = model.init(&InitConfig::default(), &mut rng);
    let mut be = CpuBackend::new(model, p).unwrap();
    let opt = OptimConfig { kind: OptimKind::Rmsprop, lr: 1e-3, clip, ..Default::default() };
    let mut tail = Vec::new();
    for step in 1..=steps {
        let out = be.train_step(&task.batch(20, &mut rng), &opt.hyper(opt.lr, step)).unwrap();
        if step + 50 > steps {
            tail.push(out.loss as f64);
        }
    }
    tail.iter().sum::<f64>() / tail.len() as f64
}

/// Copying memory at T = 10 (baseline 10 ln 8 / 30 = 0.693): within 400
/// steps the uRNN (N = 32 complex units) is far below the memoryless
/// baseline, while a tanh RNN of the same real state width (64) is still at it.
#[test]
fn urnn_learns_copying_memory_where_a_tanh_rnn_does_not() {
    let baseline = Task::new(TaskKind::Copy, 10).unwrap().baseline_loss();
    let u = copy_loss(ModelKind::Urnn, 32, 10, 400, 0.0, 1);
    let r = copy_loss(ModelKind::Rnn, 64, 10, 400, 1.0, 1);
    eprintln!("copy T=10 after 400 steps: uRNN {u:.4}, tanh RNN {r:.4}, baseline {baseline:.4}");
    assert!(u < 0.3 * baseline, "uRNN loss {u} should be far below the baseline {baseline}");
    assert!(r > 0.9 * baseline, "tanh RNN loss {r} should still sit at the baseline {baseline}");
}
