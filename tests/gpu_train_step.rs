//! The whole GPU training step (forward, loss, backward, clipping, update)
//! against the CPU reference, for sizes that are and are not multiples of
//! the workgroup size, through both the persistent and the step-wise scan.

use longmem::gpu::testing::{assert_grads_close, dist, fresh_seed, norm, test_context};
use longmem::models::scrn::{AlphaMode, ScrnForm};
use longmem::models::{Dims, InitConfig, Model, ModelKind, ModelOptions, ScanMode, ScanOptions};
use longmem::rng::Rng;
use longmem::tasks::{Task, TaskKind};
use longmem::train::cpu::CpuBackend;
use longmem::train::gpu::GpuBackend;
use longmem::train::optim::{OptimConfig, OptimKind};
use longmem::train::Backend;

fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum::<f64>().sqrt();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum::<f64>().sqrt().max(1e-12);
    num / den
}

struct Case {
    kind: ModelKind,
    task: TaskKind,
    t: usize,
    hidden: usize,
    batch: usize,
    scan: ScanMode,
    chunk: usize,
}

fn check(case: &Case) {
    check_with(case, &ModelOptions::default());
}

fn check_with(case: &Case, opts: &ModelOptions) {
    check_prepared(case, opts, |_, _| {});
}

/// `prepare` may set parameters after the random init.
fn check_prepared(case: &Case, opts: &ModelOptions, prepare: impl Fn(&Model, &mut [f32])) {
    let Some(ctx) = test_context("gpu_train_step") else { return };
    let task = Task::new(case.task, case.t).unwrap();
    let dims = Dims { input: task.input_width(), hidden: case.hidden, output: task.output_width() };
    let model = Model::build(case.kind, dims, opts).unwrap();
    // fresh random inputs each run; LONGMEM_TEST_SEED replays one
    let mut rng = Rng::seed(fresh_seed("gpu_train_step"));
    let mut params = model.init(&InitConfig { gain: 0.9, ..Default::default() }, &mut rng);
    prepare(&model, &mut params);
    let scan = ScanOptions { mode: case.scan, max_steps_per_dispatch: case.chunk };
    let mut gpu = GpuBackend::new(ctx, model.clone(), &params, scan).unwrap();
    let mut cpu = CpuBackend::new(model, params).unwrap();
    let batch = task.batch(case.batch, &mut rng);
    let label = format!("{:?} {:?} T={} H={} B={} {:?}", case.kind, case.task, case.t, case.hidden, case.batch, case.scan);
    if case.scan == ScanMode::Persistent {
        assert!(gpu.uses_persistent(&batch).unwrap(), "{label}: expected the persistent kernel");
    }

    // states
    let s_gpu = gpu.states(&batch).unwrap();
    let x = batch.x.view();
    // the model's own start: zeros, or the uRNN's learned h0
    let h0 = cpu.model.initial_states(&cpu.params().unwrap(), case.batch);
    let s_cpu = cpu.model.forward(&cpu.params().unwrap(), x, h0.view());
    let e = rel_err(&s_gpu, s_cpu.as_slice().unwrap());
    assert!(e < 1e-5, "{label}: states rel err {e}");

    // loss and gradients
    let (l_gpu, g_gpu) = gpu.gradients(&batch).unwrap();
    let (l_cpu, g_cpu) = cpu.gradients(&batch).unwrap();
    assert!(((l_gpu - l_cpu) / l_cpu).abs() < 1e-5, "{label}: loss {l_gpu} vs {l_cpu}");
    assert_grads_close(&label, &cpu.model, &g_gpu, &g_cpu, &grads_f64(&cpu, &batch));

    // a few full steps with Adam and clipping, each from the same state on
    // both sides: the GPU's parameters and moments are loaded into the CPU
    // first, so rounding cannot compound along the trajectory. Adam's ε is
    // raised from 1e-8: at step 1 the update is lr·g/(|g| + ε), a jump of
    // ±lr for any gradient above ε, so one at rounding level (exactly zero
    // in exact arithmetic) would move either way.
    let opt = OptimConfig { kind: OptimKind::Adam, lr: 1e-2, clip: 0.5, eps: 1e-4, ..Default::default() };
    for t in 1..=3 {
        let b = task.batch(case.batch, &mut rng);
        let (p, (m, v)) = (gpu.params().unwrap(), gpu.optim_state().unwrap());
        cpu.load(&p, &m, &v).unwrap();
        let g64 = grads_f64(&cpu, &b);
        let n64 = norm(&g64);
        // how far apart the two sides' gradients may fairly be here
        let e32 = dist(&cpu.gradients(&b).unwrap().1, &g64);
        let apart = (1e-4 * n64).max(8.0 * e32) + e32;
        let h = opt.hyper(opt.lr, t);
        let a = gpu.train_step(&b, &h).unwrap();
        let c = cpu.train_step(&b, &h).unwrap();
        assert!(((a.loss - c.loss) / c.loss).abs() < 1e-4, "{label}: step {t} loss {} vs {}", a.loss, c.loss);
        let (e_gpu, e_cpu) = ((a.grad_norm as f64 - n64).abs(), (c.grad_norm as f64 - n64).abs());
        assert!(e_gpu <= (1e-4 * n64).max(8.0 * e_cpu), "{label}: step {t} grad norm {} vs f64 {n64} (f32 CPU {})", a.grad_norm, c.grad_norm);
        let e = rel_err(&gpu.params().unwrap(), &cpu.params().unwrap());
        assert!(e < 1e-5, "{label}: params after step {t} rel err {e}");
        // m takes (1-β1)·g and v (1-β2)·g² of the clipped gradient (factor
        // 2 for the two sides' clip scales differing too)
        let apart = apart * (opt.clip / n64).min(1.0);
        let ((m_gpu, v_gpu), (m_cpu, v_cpu)) = (gpu.optim_state().unwrap(), cpu.optim_state().unwrap());
        let m_cpu64: Vec<f64> = m_cpu.iter().map(|&x| x as f64).collect();
        let v_cpu64: Vec<f64> = v_cpu.iter().map(|&x| x as f64).collect();
        let (dm, dv) = (dist(&m_gpu, &m_cpu64), dist(&v_gpu, &v_cpu64));
        let dm_max = 1e-5 * norm(&m_cpu64) + 2.0 * (1.0 - opt.beta1) * apart;
        let dv_max = 1e-5 * norm(&v_cpu64) + 2.0 * (1.0 - opt.beta2) * 2.0 * n64 * apart;
        assert!(dm <= dm_max && dv <= dv_max, "{label}: step {t} Adam moments apart by {dm} {dv} (allowed {dm_max} {dv_max})");
    }
}

fn grads_f64(cpu: &CpuBackend, batch: &longmem::tasks::Batch) -> Vec<f64> {
    longmem::gpu::testing::grads_f64(&cpu.model, &cpu.params().unwrap(), batch)
}

#[test]
fn tanh_rnn_adding_persistent() {
    check(&Case { kind: ModelKind::Rnn, task: TaskKind::Adding, t: 12, hidden: 37, batch: 5, scan: ScanMode::Persistent, chunk: 5 });
}

#[test]
fn tanh_rnn_copy_step() {
    check(&Case { kind: ModelKind::Rnn, task: TaskKind::Copy, t: 3, hidden: 70, batch: 3, scan: ScanMode::Step, chunk: 64 });
}

#[test]
fn sigmoid_srn_copy_persistent_and_adding_step() {
    check(&Case { kind: ModelKind::Srn, task: TaskKind::Copy, t: 5, hidden: 33, batch: 4, scan: ScanMode::Persistent, chunk: 3 });
    check(&Case { kind: ModelKind::Srn, task: TaskKind::Adding, t: 7, hidden: 70, batch: 3, scan: ScanMode::Step, chunk: 64 });
}

#[test]
fn linear_rnn_copy_persistent_multiple_of_wg() {
    check(&Case { kind: ModelKind::Linear, task: TaskKind::Copy, t: 4, hidden: 64, batch: 9, scan: ScanMode::Persistent, chunk: 7 });
}

#[test]
fn linear_rnn_adding_step() {
    check(&Case { kind: ModelKind::Linear, task: TaskKind::Adding, t: 9, hidden: 17, batch: 2, scan: ScanMode::Step, chunk: 64 });
}

#[test]
fn lstm_adding_persistent() {
    check(&Case { kind: ModelKind::Lstm, task: TaskKind::Adding, t: 10, hidden: 19, batch: 5, scan: ScanMode::Persistent, chunk: 4 });
}

#[test]
fn lstm_copy_step() {
    check(&Case { kind: ModelKind::Lstm, task: TaskKind::Copy, t: 3, hidden: 70, batch: 3, scan: ScanMode::Step, chunk: 64 });
}

#[test]
fn gru_adding_persistent() {
    check(&Case { kind: ModelKind::Gru, task: TaskKind::Adding, t: 10, hidden: 21, batch: 6, scan: ScanMode::Persistent, chunk: 3 });
}

#[test]
fn gru_copy_step() {
    check(&Case { kind: ModelKind::Gru, task: TaskKind::Copy, t: 3, hidden: 66, batch: 2, scan: ScanMode::Step, chunk: 64 });
}

#[test]
fn scrn_paper_form_persistent_learned_alpha_per_unit() {
    let opts = ModelOptions { context: 7, alpha_mode: AlphaMode::Unit, alpha: 0.9, ..Default::default() };
    check_with(&Case { kind: ModelKind::Scrn, task: TaskKind::Adding, t: 11, hidden: 19, batch: 5, scan: ScanMode::Persistent, chunk: 4 }, &opts);
}

#[test]
fn scrn_code_form_step_shared_alpha() {
    let opts = ModelOptions { context: 5, alpha_mode: AlphaMode::Shared, scrn_form: ScrnForm::Code, ..Default::default() };
    check_with(&Case { kind: ModelKind::Scrn, task: TaskKind::Copy, t: 3, hidden: 66, batch: 3, scan: ScanMode::Step, chunk: 5 }, &opts);
}

#[test]
fn scrn_fixed_alpha_without_bias() {
    let opts = ModelOptions { context: 3, bias: false, ..Default::default() };
    check_with(&Case { kind: ModelKind::Scrn, task: TaskKind::Adding, t: 6, hidden: 8, batch: 2, scan: ScanMode::Persistent, chunk: 64 }, &opts);
}

/// Token inputs (embedding gather / CSR scatter) and a state carried across
/// consecutive batches (truncated BPTT) give the CPU's losses, gradients and
/// parameters, for every family; also as overlapping windows do it, with
/// unscored leading steps (whose readout the CPU skips and the GPU masks)
/// and the state carried from a step inside the batch.
#[test]
fn token_inputs_with_carried_state() {
    let Some(ctx) = test_context("gpu_train_step") else { return };
    let mut rng = Rng::seed(fresh_seed("gpu_train_step tokens"));
    let (vocab, b) = (23, 4);
    // (steps, carry the state in, unscored leading steps, carry out from)
    let shapes = [(5, false, 0, Some(3)), (5, true, 2, Some(2)), (5, true, 3, None), (2, true, 0, None)];
    let token_batch = |rng: &mut Rng, (t_len, carry, context, carry_at): (usize, bool, usize, Option<usize>)| {
        let ids: Vec<u32> = (0..t_len * b).map(|_| rng.below(vocab) as u32).collect();
        let cls: Vec<u32> = (0..t_len * b).map(|_| rng.below(vocab) as u32).collect();
        let mut mask = vec![1.0; t_len * b];
        mask[..context * b].fill(0.0);
        longmem::tasks::Batch {
            x: ndarray::Array3::zeros((t_len, b, 0)),
            target: longmem::tasks::Target::Classes(cls),
            mask,
            metric_mask: vec![0.0; t_len * b],
            loss_norm: Some(1.0 / b as f64),
            tokens: Some(ids),
            carry_state: carry,
            feedback: None,
            carry_at,
        }
    };
    for (kind, scan) in [
        (ModelKind::Rnn, ScanMode::Persistent),
        (ModelKind::Lstm, ScanMode::Step),
        (ModelKind::Gru, ScanMode::Persistent),
        (ModelKind::Scrn, ScanMode::Step),
        // the uRNN starts its first batch from its learned h0, which gets no gradient when a state is carried
        (ModelKind::Urnn, ScanMode::Persistent),
        (ModelKind::Urnn, ScanMode::Step),
    ] {
        let hidden = if kind == ModelKind::Urnn { 8 } else { 13 };
        let model = Model::new(kind, Dims { input: vocab, hidden, output: vocab }).unwrap();
        let params = model.init(&InitConfig::default(), &mut rng);
        let mut gpu = GpuBackend::new(ctx.clone(), model.clone(), &params, ScanOptions { mode: scan, max_steps_per_dispatch: 3 }).unwrap();
        let mut cpu = CpuBackend::new(model, params).unwrap();
        let opt = OptimConfig { kind: OptimKind::Sgd, lr: 0.5, clip: 5.0, ..Default::default() };
        for (step, &shape) in shapes.iter().enumerate() {
            // the first batch starts from the model's own state, the rest
            // carry the state on, the last one into a shorter segment
            // (another plan)
            let batch = token_batch(&mut rng, shape);
            // each step from the GPU's parameters on both sides (the carried
            // states are each side's own), held to the f64 reference there
            let (m, v) = gpu.optim_state().unwrap();
            cpu.load(&gpu.params().unwrap(), &m, &v).unwrap();
            let p64: Vec<f64> = cpu.params().unwrap().iter().map(|&x| x as f64).collect();
            let g64 = match cpu.carried_state() {
                Some(h) if step > 0 => longmem::train::cpu::loss_grads_from::<f64>(&cpu.model, &p64, &batch, h.mapv(|x| x as f64).view(), false).1,
                _ => longmem::train::cpu::loss_grads::<f64>(&cpu.model, &p64, &batch).1,
            };
            let label = format!("{kind:?} {scan:?} step {step}");
            if step == 1 {
                let (l_gpu, g_gpu) = gpu.gradients(&batch).unwrap();
                let (l_cpu, g_cpu) = cpu.gradients(&batch).unwrap();
                assert!(((l_gpu - l_cpu) / l_cpu).abs() < 1e-5, "{label}: loss {l_gpu} vs {l_cpu}");
                assert_grads_close(&label, &cpu.model, &g_gpu, &g_cpu, &g64);
                continue;
            }
            let h = opt.hyper(opt.lr, step as u64);
            let p0 = cpu.params().unwrap();
            let a = gpu.train_step(&batch, &h).unwrap();
            let c = cpu.train_step(&batch, &h).unwrap();
            assert!(((a.loss - c.loss) / c.loss).abs() < 1e-5, "{label}: loss {} vs {}", a.loss, c.loss);
            let n64 = norm(&g64);
            let (e_gpu, e_cpu) = ((a.grad_norm as f64 - n64).abs(), (c.grad_norm as f64 - n64).abs());
            assert!(e_gpu <= (1e-4 * n64).max(8.0 * e_cpu), "{label}: grad norm {} vs f64 {n64} (f32 CPU {})", a.grad_norm, c.grad_norm);
            // plain SGD's step is -lr·(clip scale)·g: the gradient each side
            // applied, read back from its update, is held to f64 as above
            let applied = |p1: Vec<f32>, gn: f32| -> Vec<f32> {
                let k = opt.lr as f32 * if gn > opt.clip as f32 { opt.clip as f32 / gn } else { 1.0 };
                p0.iter().zip(&p1).map(|(a, b)| (a - b) / k).collect()
            };
            let (u_gpu, u_cpu) = (applied(gpu.params().unwrap(), a.grad_norm), applied(cpu.params().unwrap(), c.grad_norm));
            assert_grads_close(&format!("{label} update"), &cpu.model, &u_gpu, &u_cpu, &g64);
        }
        // a carried state changes the result: the same batch from zeros differs
        let mut batch = token_batch(&mut rng, (5, true, 0, None));
        let (carried, _) = gpu.evaluate(&batch).unwrap();
        batch.carry_state = false;
        let (fresh, _) = gpu.evaluate(&batch).unwrap();
        assert!((carried - fresh).abs() > 1e-6, "{kind:?}: the carried state made no difference");
    }
}

/// More units than threads per workgroup: each invocation owns several
/// units (and their cell states) inside the persistent kernels.
#[test]
fn lstm_and_gru_wider_than_a_workgroup_persistent() {
    for kind in [ModelKind::Lstm, ModelKind::Gru] {
        check(&Case { kind, task: TaskKind::Adding, t: 4, hidden: 260, batch: 2, scan: ScanMode::Persistent, chunk: 3 });
    }
}

#[test]
fn urnn_adding_workgroup_scratch() {
    check(&Case { kind: ModelKind::Urnn, task: TaskKind::Adding, t: 9, hidden: 16, batch: 3, scan: ScanMode::Persistent, chunk: 4 });
}

#[test]
fn urnn_copy_storage_scratch() {
    check(&Case { kind: ModelKind::Urnn, task: TaskKind::Copy, t: 2, hidden: 8, batch: 2, scan: ScanMode::Step, chunk: 5 });
}

#[test]
fn urnn_two_units_and_no_biases() {
    let opts = ModelOptions { bias: false, ..Default::default() };
    check_with(&Case { kind: ModelKind::Urnn, task: TaskKind::Adding, t: 6, hidden: 2, batch: 4, scan: ScanMode::Auto, chunk: 64 }, &opts);
}

/// More units than the 256 threads of a workgroup: each thread owns several.
/// modReLU `(|z| + b) z/|z|` is kept off its kink |z| = -b, where GPU and
/// CPU may fairly take different sides (a CI seed found one with the init's
/// b in ±0.01 and 1024 units of |z| ~ 0.04): even units are on (b = 0.05:
/// three Adam steps of 1e-2 leave it positive) and odd ones off (b = -10,
/// above any |z|), so both branches are still held to the CPU. h0 is scaled
/// to |z| ~ 1 so that b/|z|, which scales rounding in the on units'
/// gradients, stays small.
#[test]
fn urnn_more_units_than_threads() {
    let case = Case { kind: ModelKind::Urnn, task: TaskKind::Adding, t: 3, hidden: 1024, batch: 2, scan: ScanMode::Auto, chunk: 2 };
    check_prepared(&case, &ModelOptions::default(), |model, p| {
        for (k, i) in model.layout().get("b_mod").unwrap().range().enumerate() {
            p[i] = if k % 2 == 0 { 0.05 } else { -10.0 };
        }
        model.layout().get("h0").unwrap().range().for_each(|i| p[i] *= 30.0);
    });
}

/// The uRNN's recurrence stays unitary on the GPU after many optimizer
/// steps: with modReLU made the identity (bias ε) and zero inputs, the GPU
/// forward is h_t = W h_{t-1}, so every state keeps h0's norm (f32, 1e-5).
#[test]
fn urnn_recurrence_stays_unitary_on_the_gpu_after_training() {
    let Some(ctx) = test_context("gpu_train_step") else { return };
    let task = Task::new(TaskKind::Copy, 3).unwrap();
    let n = 32;
    let model = Model::new(ModelKind::Urnn, Dims { input: task.input_width(), hidden: n, output: task.output_width() }).unwrap();
    let mut rng = Rng::seed(fresh_seed("gpu_train_step"));
    let p0 = model.init(&InitConfig::default(), &mut rng);
    let mut gpu = GpuBackend::new(ctx, model.clone(), &p0, ScanOptions::default()).unwrap();
    let opt = OptimConfig { kind: OptimKind::Rmsprop, lr: 1e-2, clip: 0.0, ..Default::default() };
    for t in 1..=100 {
        gpu.train_step(&task.batch(4, &mut rng), &opt.hyper(opt.lr, t)).unwrap();
    }
    let mut p = gpu.params().unwrap();
    let th = model.layout().get("theta").unwrap().range();
    let moved = p[th.clone()].iter().zip(&p0[th]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(moved > 0.05, "training should move θ (max change {moved})");
    for i in model.layout().get("b_mod").unwrap().range() {
        p[i] = longmem::models::urnn::MODRELU_EPS as f32;
    }
    let (m, v) = gpu.optim_state().unwrap();
    gpu.load(&p, &m, &v).unwrap();
    let mut b = task.batch(4, &mut rng);
    b.x.fill(0.0);
    let states = gpu.states(&b).unwrap();
    let s = 2 * n;
    let norms: Vec<f64> = states.chunks(s).map(|h| h.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt()).collect();
    let h0 = norms[0];
    for (i, nv) in norms.iter().enumerate() {
        assert!(((nv - h0) / h0).abs() < 1e-5, "state row {i}: norm {nv} vs h0's {h0}");
    }
}
