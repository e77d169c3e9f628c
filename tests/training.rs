//! Training end to end through the library: the CPU and GPU paths agree
//! step by step from the same seed, runs resume exactly, and the models
//! learn what they should (with thresholds a broken model cannot meet).

use longmem::config::TrainConfig;
use longmem::device::Engine;
use longmem::gpu::testing::test_context;
use longmem::models::{ModelKind, ScanMode};
use longmem::tasks::TaskKind;
use longmem::train::metrics::{self, MetricsLine};
use longmem::train::checkpoint::Checkpoint;
use longmem::train::run::{build_model, train_on, RunOptions, CHECKPOINT_FILE, METRICS_FILE};
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("longmem-training-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn run(cfg: &TrainConfig, engine: &Engine, dir: &std::path::Path, resume: bool) -> Vec<MetricsLine> {
    train_on(cfg, &RunOptions { out: dir.to_path_buf(), resume, verbose: false }, engine).unwrap();
    metrics::read(&dir.join(METRICS_FILE)).unwrap()
}

fn small(task: TaskKind, t: usize, model: ModelKind) -> TrainConfig {
    TrainConfig { task, seq_len: t, model, hidden: 24, batch: 8, steps: 50, log_every: 1, checkpoint_every: 50, seed: 5, ..Default::default() }
}

#[test]
fn cpu_and_gpu_loss_curves_agree_over_50_steps() {
    let Some(ctx) = test_context("cpu_and_gpu_loss_curves_agree") else { return };
    for (task, t, model, scan) in [
        (TaskKind::Adding, 10, ModelKind::Rnn, ScanMode::Persistent),
        (TaskKind::Copy, 5, ModelKind::Rnn, ScanMode::Step),
        (TaskKind::Adding, 10, ModelKind::Linear, ScanMode::Auto),
    ] {
        let mut cfg = small(task, t, model);
        cfg.scan = scan;
        let (dc, dg) = (tmp(&format!("agree-cpu-{t}-{model:?}")), tmp(&format!("agree-gpu-{t}-{model:?}")));
        let c = run(&cfg, &Engine::Cpu, &dc, false);
        let g = run(&cfg, &Engine::Gpu(ctx.clone()), &dg, false);
        assert_eq!(c.len(), 50);
        assert_eq!(g.len(), 50);
        let mut worst = 0.0f64;
        for (a, b) in c.iter().zip(&g) {
            assert_eq!(a.step, b.step);
            let rel = (a.loss - b.loss).abs() / a.loss.abs().max(1e-6);
            worst = worst.max(rel);
            assert!(rel < 1e-4, "{task:?} {model:?}: step {} loss cpu {} gpu {}", a.step, a.loss, b.loss);
        }
        eprintln!("{task:?} {model:?} {scan:?}: worst relative loss difference over 50 steps {worst:.2e}");
        let _ = std::fs::remove_dir_all(&dc);
        let _ = std::fs::remove_dir_all(&dg);
    }
}

fn resume_is_exact(engine: Engine, name: &str) {
    let mut cfg = small(TaskKind::Copy, 4, ModelKind::Rnn);
    cfg.steps = 30;
    // the split at 15 is off both grids: the first piece logs and
    // checkpoints at its end, which the resumed run must not show
    cfg.log_every = 4;
    cfg.checkpoint_every = 6;
    let (da, db) = (tmp(&format!("{name}-whole")), tmp(&format!("{name}-resumed")));
    let whole = run(&cfg, &engine, &da, false);
    let mut first = cfg.clone();
    first.steps = 15;
    run(&first, &engine, &db, false);
    let resumed = run(&cfg, &engine, &db, true);
    let losses = |v: &[MetricsLine]| v.iter().map(|l| (l.step, l.loss)).collect::<Vec<_>>();
    assert_eq!(losses(&whole), losses(&resumed), "{name}: resumed run diverged");
    // params, optimizer state, step and RNG all identical
    let (_, model) = build_model(&cfg).unwrap();
    let ca = Checkpoint::load(&model, &da.join(CHECKPOINT_FILE)).unwrap();
    let cb = Checkpoint::load(&model, &db.join(CHECKPOINT_FILE)).unwrap();
    assert!(ca == cb, "{name}: final checkpoints differ");
    let _ = std::fs::remove_dir_all(&da);
    let _ = std::fs::remove_dir_all(&db);
}

#[test]
fn resume_continues_exactly_on_cpu() {
    resume_is_exact(Engine::Cpu, "resume-cpu");
}

#[test]
fn resume_continues_exactly_on_gpu() {
    let Some(ctx) = test_context("resume_continues_exactly_on_gpu") else { return };
    resume_is_exact(Engine::Gpu(ctx), "resume-gpu");
}

fn mean_loss(lines: &[MetricsLine], from: u64, to: u64) -> f64 {
    let sel: Vec<f64> = lines.iter().filter(|l| l.step > from && l.step <= to).map(|l| l.loss).collect();
    sel.iter().sum::<f64>() / sel.len() as f64
}

/// Adding problem, T = 10: the tanh RNN gets far under the 0.167 baseline.
fn adding_learns(engine: Engine, steps: u64, name: &str) {
    let cfg = TrainConfig { task: TaskKind::Adding, seq_len: 10, steps, log_every: 10, checkpoint_every: steps, seed: 1, ..Default::default() };
    let dir = tmp(name);
    let lines = run(&cfg, &engine, &dir, false);
    let start = mean_loss(&lines, 0, 20);
    let end = mean_loss(&lines, steps - 50, steps);
    eprintln!("{name}: adding T=10 loss {start:.4} over the first 20 steps, {end:.4} over the last 50 (baseline 0.1667)");
    assert!(start > 0.1, "{name}: started suspiciously low ({start})");
    assert!(end < 0.03, "{name}: adding loss {end} is not clearly under the 0.167 baseline");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tanh_rnn_learns_adding_on_cpu() {
    adding_learns(Engine::Cpu, 600, "adding-cpu");
}

#[test]
fn tanh_rnn_learns_adding_on_gpu() {
    let Some(ctx) = test_context("tanh_rnn_learns_adding_on_gpu") else { return };
    adding_learns(Engine::Gpu(ctx), 400, "adding-gpu");
}

/// Copying memory, T = 10: the loss falls from ln 10 to the memoryless
/// baseline 10 ln 8 / 30, and a tanh RNN does not beat it.
#[test]
fn tanh_rnn_reaches_copy_baseline_on_cpu() {
    let cfg = TrainConfig { task: TaskKind::Copy, seq_len: 10, steps: 400, log_every: 10, checkpoint_every: 400, seed: 2, ..Default::default() };
    let dir = tmp("copy-cpu");
    let lines = run(&cfg, &Engine::Cpu, &dir, false);
    let baseline = 10.0 * 8f64.ln() / 30.0;
    let first = lines[0].loss;
    let end = mean_loss(&lines, 300, 400);
    let acc = lines.iter().filter(|l| l.step > 300).map(|l| l.accuracy.unwrap()).sum::<f64>() / 10.0;
    eprintln!("copy T=10: first {first:.3}, last 100 steps {end:.4}, baseline {baseline:.4}, recall accuracy {acc:.3}");
    assert!(first > 1.5, "copy loss should start near ln 10, got {first}");
    assert!((end - baseline).abs() < 0.03 * baseline, "copy loss {end} should sit at the baseline {baseline}");
    assert!(acc < 0.3, "a tanh RNN should recall at chance (1/8), got {acc}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Delayed copy with a short delay is learned to perfect recall; at chance
/// the accuracy would be 1/2.
#[test]
fn delayed_copy_short_delay_is_learned_on_cpu() {
    let cfg = TrainConfig {
        task: TaskKind::DelayedCopy,
        seq_len: 40,
        delay: 5,
        hidden: 32,
        batch: 16,
        steps: 400,
        log_every: 50,
        checkpoint_every: 400,
        seed: 3,
        ..Default::default()
    };
    let dir = tmp("delayed-copy");
    let lines = run(&cfg, &Engine::Cpu, &dir, false);
    let first = lines[0].accuracy.unwrap();
    let last = lines.last().unwrap().accuracy.unwrap();
    eprintln!("delayed copy d=5: accuracy {first:.3} at step 50, {last:.3} at step 400");
    assert!(last > 0.98, "delayed copy d=5 not learned: accuracy {last}");
    assert!((lines[0].baseline_loss.unwrap() - 2f64.ln()).abs() < 1e-12);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--input-scale s` multiplies the initial w_in by s and leaves every other
/// initial weight as it was; the checkpoint a run starts from holds it.
#[test]
fn input_scale_multiplies_only_the_initial_input_weights() {
    let base = TrainConfig { steps: 1, ..small(TaskKind::DelayedCopy, 30, ModelKind::Rnn) };
    let (_, model) = build_model(&base).unwrap();
    let rng = || longmem::rng::Rng::stream(base.seed, longmem::train::run::STREAM_INIT);
    let weak = TrainConfig { input_scale: 0.25, ..base.clone() };
    let (a, b) = (base.initial_params(&model, &mut rng()), weak.initial_params(&model, &mut rng()));
    let w_in = model.layout().get("w_in").unwrap().range();
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        let want = if w_in.contains(&i) { x * 0.25 } else { *x };
        assert_eq!(*y, want, "parameter {i}");
    }
    assert!(a[w_in].iter().any(|v| v.abs() > 0.1), "w_in should not start near zero");
    for bad in [0.0, -1.0, f64::NAN] {
        let e = TrainConfig { input_scale: bad, ..base.clone() }.validate().unwrap_err();
        assert!(format!("{e:#}").contains("--input-scale"), "{e:#}");
    }
    let warp = TrainConfig { input_scale: 0.5, model: ModelKind::Warp, ..base.clone() };
    assert!(format!("{:#}", warp.validate().unwrap_err()).contains("WARP"));
}
