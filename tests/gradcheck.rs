//! Finite-difference gradient checks of the CPU reference in f64: every
//! parameter of both models, under both losses, and the initial state.

use longmem::models::scrn::{AlphaMode, ScrnForm};
use longmem::models::{readout, Dims, InitConfig, Model, ModelKind, ModelOptions, StepAt};
use longmem::real::cast_vec;
use longmem::rng::Rng;
use longmem::tasks::{Batch, Task, TaskKind};
use longmem::train::cpu::loss_grads;
use longmem::train::loss::loss_and_grad;
use ndarray::Array2;

fn loss_at(model: &Model, p: &[f64], batch: &Batch, h0: &Array2<f64>) -> f64 {
    let x = batch.x.mapv(|v| v as f64);
    let states = model.forward(p, x.view(), h0.view());
    let y = readout::forward(p, model.layout(), states.view(), model.readout_width());
    loss_and_grad(&y, &batch.target, &batch.mask).0
}

fn check(kind: ModelKind, task: TaskKind, t: usize) {
    check_opts(kind, &ModelOptions::default(), task, t);
}

fn check_opts(kind: ModelKind, opts: &ModelOptions, task: TaskKind, t: usize) {
    // batch 3 takes the CPU's small-batch loops, batch 6 its GEMM path
    for batch in [3, 6] {
        check_batch(kind, opts, task, t, batch);
    }
}

fn check_batch(kind: ModelKind, opts: &ModelOptions, task: TaskKind, t: usize, batch: usize) {
    let task = Task::new(task, t).unwrap();
    let model = Model::build(kind, Dims { input: task.input_width(), hidden: 5, output: task.output_width() }, opts).unwrap();
    let mut rng = Rng::seed(3);
    // gain > 1 makes the tanh saturate in places, which the check must survive
    let p32 = model.init(&InitConfig { gain: 1.3, ..Default::default() }, &mut rng);
    let mut p: Vec<f64> = cast_vec(&p32);
    // non-zero biases so every term of the gradient is exercised
    for v in model.layout().views().iter().filter(|v| v.name.starts_with('b')) {
        for i in v.range() {
            p[i] = rng.normal() * 0.3;
        }
    }
    let batch_size = batch;
    let batch = task.batch(batch_size, &mut rng);
    let (_, grads, _) = loss_grads::<f64>(&model, &p, &batch);
    let sw = model.state_width();
    let h0 = Array2::zeros((batch_size, sw));
    let eps = 1e-5;
    let mut worst = 0.0f64;
    for i in 0..p.len() {
        let mut q = p.clone();
        q[i] = p[i] + eps;
        let lp = loss_at(&model, &q, &batch, &h0);
        q[i] = p[i] - eps;
        let lm = loss_at(&model, &q, &batch, &h0);
        let fd = (lp - lm) / (2.0 * eps);
        // the floor: central differences on an O(1) loss carry ~1e-10 absolute error
        let err = (fd - grads[i]).abs() / (fd.abs() + grads[i].abs()).max(1e-5);
        let name = &model.layout().views().iter().find(|v| v.range().contains(&i)).unwrap().name;
        assert!(err < 1e-5, "{kind:?} {:?}: d{name}[{i}] analytic {} vs numeric {fd} (rel err {err})", task.kind, grads[i]);
        worst = worst.max(err);
    }
    eprintln!("{kind:?} {:?}: worst relative error {worst:.2e} over {} parameters", task.kind, p.len());

    // initial state: Model::backward returns dL/dh0
    let x = batch.x.mapv(|v| v as f64);
    let mut h0 = Array2::from_shape_fn((batch_size, sw), |_| rng.normal() * 0.5);
    let states = model.forward(&p, x.view(), h0.view());
    let y = readout::forward(&p, model.layout(), states.view(), model.readout_width());
    let (_, dy) = loss_and_grad(&y, &batch.target, &batch.mask);
    let mut g = vec![0.0; p.len()];
    let ds = readout::backward(&p, model.layout(), states.view(), model.readout_width(), &dy, &mut g);
    let dh0 = model.backward(&p, x.view(), states.view(), ds.view(), &mut g);
    for b in 0..batch_size {
        for j in 0..sw {
            let orig = h0[[b, j]];
            h0[[b, j]] = orig + eps;
            let lp = loss_at(&model, &p, &batch, &h0);
            h0[[b, j]] = orig - eps;
            let lm = loss_at(&model, &p, &batch, &h0);
            h0[[b, j]] = orig;
            let fd = (lp - lm) / (2.0 * eps);
            let err = (fd - dh0[[b, j]]).abs() / (fd.abs() + dh0[[b, j]].abs()).max(1e-5);
            assert!(err < 1e-5, "{kind:?}: dh0[{b},{j}] analytic {} vs numeric {fd}", dh0[[b, j]]);
        }
    }
}

#[test]
fn tanh_rnn_mse() {
    check(ModelKind::Rnn, TaskKind::Adding, 6);
}

#[test]
fn tanh_rnn_cross_entropy() {
    check(ModelKind::Rnn, TaskKind::Copy, 2);
}

#[test]
fn sigmoid_srn_mse_and_cross_entropy() {
    check(ModelKind::Srn, TaskKind::Adding, 6);
    check(ModelKind::Srn, TaskKind::Copy, 2);
}

#[test]
fn linear_rnn_mse() {
    check(ModelKind::Linear, TaskKind::Adding, 6);
}

#[test]
fn linear_rnn_cross_entropy() {
    check(ModelKind::Linear, TaskKind::Copy, 2);
}

#[test]
fn lstm_mse() {
    check(ModelKind::Lstm, TaskKind::Adding, 6);
}

#[test]
fn lstm_cross_entropy() {
    check(ModelKind::Lstm, TaskKind::Copy, 2);
}

#[test]
fn gru_mse() {
    check(ModelKind::Gru, TaskKind::Adding, 6);
}

#[test]
fn gru_cross_entropy() {
    check(ModelKind::Gru, TaskKind::Copy, 2);
}

/// Every SCRN variant: both forms, fixed / shared / per-unit α, with and without biases.
#[test]
fn scrn_variants() {
    for (form, alpha_mode, bias) in [
        (ScrnForm::Paper, AlphaMode::Fixed, true),
        (ScrnForm::Code, AlphaMode::Fixed, false),
        (ScrnForm::Paper, AlphaMode::Shared, true),
        (ScrnForm::Code, AlphaMode::Unit, true),
        (ScrnForm::Paper, AlphaMode::Unit, false),
    ] {
        let opts = ModelOptions { context: 3, alpha: 0.8, alpha_mode, scrn_form: form, bias, ..Default::default() };
        check_opts(ModelKind::Scrn, &opts, TaskKind::Adding, 6);
        check_opts(ModelKind::Scrn, &opts, TaskKind::Copy, 2);
    }
}

/// The tangent map agrees with a finite difference of one step.
#[test]
fn tangent_map_matches_finite_difference() {
    let code = ModelOptions { context: 3, scrn_form: ScrnForm::Code, alpha_mode: AlphaMode::Unit, ..Default::default() };
    let cases = [
        (ModelKind::Rnn, ModelOptions::default()),
        (ModelKind::Srn, ModelOptions::default()),
        (ModelKind::Linear, ModelOptions::default()),
        (ModelKind::Lstm, ModelOptions::default()),
        (ModelKind::Gru, ModelOptions::default()),
        (ModelKind::Scrn, ModelOptions { context: 3, ..Default::default() }),
        (ModelKind::Scrn, code),
    ];
    for (kind, opts) in cases {
        let model = Model::build(kind, Dims { input: 2, hidden: 4, output: 1 }, &opts).unwrap();
        let sw = model.state_width();
        let mut rng = Rng::seed(9);
        let mut p: Vec<f64> = cast_vec(&model.init(&InitConfig { gain: 1.5, ..Default::default() }, &mut rng));
        for v in model.layout().views().iter().filter(|v| v.name.starts_with('b')) {
            for i in v.range() {
                p[i] = rng.normal() * 0.3;
            }
        }
        let x = ndarray::Array3::from_shape_fn((1, 1, 2), |_| rng.normal());
        let h_prev = Array2::from_shape_fn((1, sw), |_| rng.normal() * 0.5);
        let s = model.forward(&p, x.view(), h_prev.view());
        let h_t: Vec<f64> = s.slice(ndarray::s![1, 0, ..]).to_vec();
        let prev: Vec<f64> = h_prev.row(0).to_vec();
        let pre = model.project(&p, x.view());
        let at = StepAt { pre: pre.row(0).to_slice().unwrap(), prev: &prev, next: &h_t };
        let q = Array2::from_shape_fn((sw, 2), |_| rng.normal());
        let jq = model.tangent(&p, &at, q.view());
        let eps = 1e-6;
        for c in 0..2 {
            let mut hp = h_prev.clone();
            let mut hm = h_prev.clone();
            for i in 0..sw {
                hp[[0, i]] += eps * q[[i, c]];
                hm[[0, i]] -= eps * q[[i, c]];
            }
            let sp = model.forward(&p, x.view(), hp.view());
            let sm = model.forward(&p, x.view(), hm.view());
            for i in 0..sw {
                let fd = (sp[[1, 0, i]] - sm[[1, 0, i]]) / (2.0 * eps);
                assert!((fd - jq[[i, c]]).abs() < 1e-7, "{kind:?} J·Q[{i},{c}]: {} vs {fd}", jq[[i, c]]);
            }
        }
    }
}

/// Token ids are one-hot inputs: same states and gradients as the dense
/// one-hot batch (whose gradients the checks above hold to finite differences).
#[test]
fn token_inputs_equal_one_hot_inputs() {
    let (vocab, t_len, b) = (7, 4, 3);
    let mut rng = Rng::seed(12);
    for kind in [ModelKind::Rnn, ModelKind::Lstm, ModelKind::Gru] {
        let model = Model::new(kind, Dims { input: vocab, hidden: 5, output: vocab }).unwrap();
        let p: Vec<f64> = cast_vec(&model.init(&InitConfig::default(), &mut rng));
        let ids: Vec<u32> = (0..t_len * b).map(|_| rng.below(vocab) as u32).collect();
        let mut onehot = ndarray::Array3::<f32>::zeros((t_len, b, vocab));
        for (r, &id) in ids.iter().enumerate() {
            onehot[[r / b, r % b, id as usize]] = 1.0;
        }
        let cls: Vec<u32> = (0..t_len * b).map(|_| rng.below(vocab) as u32).collect();
        let dense = Batch {
            x: onehot,
            target: longmem::tasks::Target::Classes(cls),
            mask: vec![1.0; t_len * b],
            metric_mask: vec![0.0; t_len * b],
            loss_norm: None,
            tokens: None,
            carry_state: false,
            feedback: None,
            carry_at: None,
        };
        let tokens = Batch { x: ndarray::Array3::zeros((t_len, b, 0)), tokens: Some(ids), ..dense.clone() };
        let (l1, g1, _) = loss_grads::<f64>(&model, &p, &dense);
        let (l2, g2, _) = loss_grads::<f64>(&model, &p, &tokens);
        assert!((l1 - l2).abs() < 1e-12, "{kind:?}: loss {l1} vs {l2}");
        for (i, (a, c)) in g1.iter().zip(&g2).enumerate() {
            assert!((a - c).abs() < 1e-12, "{kind:?}: grad[{i}] {a} vs {c}");
        }
    }
}

/// The sigmoid SRN is the SCRN with one context unit held at zero (α = 1,
/// s_0 = 0): same loss and the same gradients for the weights they share
/// (the SCRN's A, R, its fast-unit biases and its readout of h).
#[test]
fn sigmoid_srn_is_an_scrn_without_context() {
    let task = Task::new(TaskKind::Copy, 3).unwrap();
    let (i, h, o) = (task.input_width(), 5, task.output_width());
    let dims = Dims { input: i, hidden: h, output: o };
    let scrn = Model::build(ModelKind::Scrn, dims, &ModelOptions { context: 1, alpha: 1.0, ..Default::default() }).unwrap();
    let srn = Model::build(ModelKind::Srn, dims, &ModelOptions::default()).unwrap();
    let mut rng = Rng::seed(21);
    let mut ps: Vec<f64> = cast_vec(&scrn.init(&InitConfig { gain: 1.3, ..Default::default() }, &mut rng));
    for v in scrn.layout().views().iter().filter(|v| v.name.starts_with('b')) {
        for k in v.range() {
            ps[k] = rng.normal() * 0.3;
        }
    }
    // the SRN's parameters: the SCRN's rows and columns for the h units
    let (sl, rl) = (scrn.layout(), srn.layout());
    // (SRN parameter index, SCRN parameter index) for every SRN parameter
    let mut map = Vec::new();
    for r in 0..h {
        for c in 0..i {
            map.push((rl.offset("w_in") + r * i + c, sl.offset("w_in") + r * i + c));
        }
        for c in 0..h {
            map.push((rl.offset("w_rec") + r * h + c, sl.offset("w_rec") + r * h + c));
        }
        map.push((rl.offset("b") + r, sl.offset("b") + r));
    }
    for r in 0..o {
        for c in 0..h {
            map.push((rl.offset("w_out") + r * h + c, sl.offset("w_out") + r * (h + 1) + c));
        }
        map.push((rl.offset("b_out") + r, sl.offset("b_out") + r));
    }
    assert_eq!(map.len(), rl.len(), "every SRN parameter has its SCRN counterpart");
    let mut pr = vec![0.0; rl.len()];
    for &(a, b) in &map {
        pr[a] = ps[b];
    }
    let batch = task.batch(4, &mut rng);
    let (ls, gs, _) = loss_grads::<f64>(&scrn, &ps, &batch);
    let (lr, gr, _) = loss_grads::<f64>(&srn, &pr, &batch);
    assert!((ls - lr).abs() < 1e-12 * ls.abs(), "loss: SCRN {ls} vs SRN {lr}");
    for &(a, b) in &map {
        assert!((gr[a] - gs[b]).abs() <= 1e-10 * gs[b].abs().max(1e-6), "gradient {a}: SRN {} vs SCRN {}", gr[a], gs[b]);
    }
    assert!(gr.iter().any(|g| g.abs() > 1e-3), "gradients suspiciously small");
}
