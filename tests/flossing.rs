//! Gradient flossing in training: the reproduction check (a delay where
//! plain training stays at chance and flossing before training succeeds),
//! exact resume through flossing bursts, and the GPU backend (its own
//! flossing-gradient kernels and optimizer) tracking the CPU run.

use longmem::config::TrainConfig;
use longmem::device::Engine;
use longmem::gpu::testing::test_context;
use longmem::tasks::TaskKind;
use longmem::train::metrics::{self, MetricsLine};
use longmem::train::checkpoint::Checkpoint;
use longmem::train::optim::OptimKind;
use longmem::train::run::{build_model, train_on, RunOptions, CHECKPOINT_FILE, FLOSS_PLOT, METRICS_FILE};
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("longmem-flossing-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn run(cfg: &TrainConfig, engine: &Engine, dir: &std::path::Path, resume: bool) -> Vec<MetricsLine> {
    train_on(cfg, &RunOptions { out: dir.to_path_buf(), resume, verbose: false }, engine).unwrap();
    metrics::read(&dir.join(METRICS_FILE)).unwrap()
}

fn delayed_copy(delay: usize) -> TrainConfig {
    TrainConfig {
        task: TaskKind::DelayedCopy,
        seq_len: 60,
        delay,
        hidden: 32,
        batch: 16,
        steps: 1500,
        lr: 1e-3,
        clip: 1.0,
        log_every: 100,
        checkpoint_every: 1500,
        seed: 0,
        ..Default::default()
    }
}

fn final_accuracy(lines: &[MetricsLine]) -> f64 {
    let acc: Vec<f64> = lines.iter().filter(|l| l.is_training()).rev().take(3).map(|l| l.accuracy.unwrap()).collect();
    acc.iter().sum::<f64>() / acc.len() as f64
}

/// Delayed copy, T = 60, d = 20, tanh RNN N = 32: plain training stays at
/// chance; 200 flossing updates before training (k = 16, Tp = 30) let it learn.
#[test]
fn flossing_before_training_bridges_a_delay_plain_training_cannot() {
    let plain = delayed_copy(20);
    let mut flossed = plain.clone();
    flossed.floss_before = 200;
    flossed.floss_k = 16;
    flossed.floss_len = 30;
    let (dp, df) = (tmp("plain"), tmp("flossed"));
    let lp = run(&plain, &Engine::Cpu, &dp, false);
    let lf = run(&flossed, &Engine::Cpu, &df, false);
    let (ap, af) = (final_accuracy(&lp), final_accuracy(&lf));
    let floss_lines: Vec<&MetricsLine> = lf.iter().filter(|l| !l.is_training()).collect();
    let (first, last) = (floss_lines[0].loss, floss_lines[floss_lines.len() - 1].loss);
    eprintln!("d = 20: plain accuracy {ap:.3}, flossed {af:.3}; mean λ² {first:.3e} -> {last:.3e}");
    assert!(ap < 0.65, "plain training should stay near chance at d = 20, got {ap}");
    assert!(af > 0.85, "flossed training should learn d = 20, got {af}");
    assert!(last < first / 2.0, "flossing should shrink the exponents: {first} -> {last}");
    assert_eq!(floss_lines.last().unwrap().lyapunov.as_ref().unwrap().len(), 16);
    assert!(std::fs::read_to_string(df.join(FLOSS_PLOT)).unwrap().contains("<svg"));
    let _ = std::fs::remove_dir_all(&dp);
    let _ = std::fs::remove_dir_all(&df);
}

fn small_flossing() -> TrainConfig {
    TrainConfig {
        task: TaskKind::DelayedXor,
        seq_len: 20,
        delay: 6,
        hidden: 12,
        batch: 4,
        steps: 30,
        log_every: 5,
        checkpoint_every: 10,
        floss_before: 4,
        floss_every: 10,
        floss_at: vec![7],
        floss_burst: 3,
        floss_k: 4,
        floss_len: 10,
        floss_transient: 3,
        seed: 9,
        ..Default::default()
    }
}

#[test]
fn resume_is_exact_through_flossing_bursts() {
    let cfg = small_flossing();
    let (da, db) = (tmp("whole"), tmp("resumed"));
    let whole = run(&cfg, &Engine::Cpu, &da, false);
    let mut first = cfg.clone();
    first.steps = 20;
    run(&first, &Engine::Cpu, &db, false);
    let resumed = run(&cfg, &Engine::Cpu, &db, true);
    let key = |v: &[MetricsLine]| v.iter().map(|l| (l.step, l.phase.clone(), l.loss, l.floss_updates)).collect::<Vec<_>>();
    assert_eq!(key(&whole), key(&resumed));
    // before-training (4), bursts before steps 7, 10, 20 and 30 logged once each
    let floss: Vec<u64> = whole.iter().filter(|l| !l.is_training()).map(|l| l.floss_updates.unwrap()).collect();
    assert_eq!(floss, vec![4, 7, 10, 13, 16], "{whole:?}");
    let _ = std::fs::remove_dir_all(&da);
    let _ = std::fs::remove_dir_all(&db);
}

#[test]
fn separate_flossing_optimizer_resumes_exactly() {
    let mut cfg = small_flossing();
    cfg.floss_separate_optimizer = true;
    let (da, db, dc) = (tmp("sep-whole"), tmp("sep-resumed"), tmp("sep-shared"));
    let whole = run(&cfg, &Engine::Cpu, &da, false);
    let mut first = cfg.clone();
    first.steps = 20;
    run(&first, &Engine::Cpu, &db, false);
    let resumed = run(&cfg, &Engine::Cpu, &db, true);
    let key = |v: &[MetricsLine]| v.iter().map(|l| (l.step, l.phase.clone(), l.loss, l.floss_updates)).collect::<Vec<_>>();
    assert_eq!(key(&whole), key(&resumed));
    // the checkpoint carries the flossing moments, and they are not the training ones
    let model = build_model(&cfg).unwrap().1;
    let ck = Checkpoint::load(&model, &da.join(CHECKPOINT_FILE)).unwrap();
    assert_eq!(ck.floss_m.len(), ck.optim_m.len());
    assert_ne!(ck.floss_m, ck.optim_m);
    // and sharing one optimizer trains differently
    cfg.floss_separate_optimizer = false;
    let shared = run(&cfg, &Engine::Cpu, &dc, false);
    assert_ne!(key(&whole), key(&shared));
    assert!(Checkpoint::load(&model, &dc.join(CHECKPOINT_FILE)).unwrap().floss_m.is_empty());
    for d in [da, db, dc] {
        let _ = std::fs::remove_dir_all(&d);
    }
}

/// After flossing before training with its own optimizer, the training
/// optimizer starts from zero moments: one Adam step from zero leaves
/// m = (1 − β1) g and v = (1 − β2) g², so m²/v = (1 − β1)²/(1 − β2) = 10
/// wherever g ≠ 0. A shared optimizer carries the flossing moments instead.
#[test]
fn separate_flossing_optimizer_leaves_training_moments_fresh() {
    let mut cfg = small_flossing();
    (cfg.optimizer, cfg.steps, cfg.checkpoint_every, cfg.floss_every, cfg.floss_at) = (OptimKind::Adam, 1, 1, 0, vec![]);
    let model = build_model(&cfg).unwrap().1;
    let ratio_spread = |separate: bool| -> f64 {
        let mut c = cfg.clone();
        c.floss_separate_optimizer = separate;
        let d = tmp(if separate { "fresh-sep" } else { "fresh-shared" });
        run(&c, &Engine::Cpu, &d, false);
        let ck = Checkpoint::load(&model, &d.join(CHECKPOINT_FILE)).unwrap();
        let _ = std::fs::remove_dir_all(&d);
        let r: Vec<f64> = ck.optim_m.iter().zip(&ck.optim_v).filter(|(_, v)| **v > 1e-20).map(|(m, v)| (*m as f64).powi(2) / *v as f64).collect();
        assert!(r.len() > ck.optim_m.len() / 2, "{} of {} gradients nonzero", r.len(), ck.optim_m.len());
        r.iter().map(|x| (x - 10.0).abs()).fold(0.0, f64::max)
    };
    let (sep, shared) = (ratio_spread(true), ratio_spread(false));
    assert!(sep < 1e-3, "separate: max |m²/v − 10| = {sep}");
    assert!(shared > 1.0, "shared: max |m²/v − 10| = {shared}");
}

#[test]
fn flossing_weight_adds_to_every_step() {
    let mut cfg = small_flossing();
    cfg.floss_before = 0;
    cfg.floss_every = 0;
    cfg.floss_at = vec![];
    cfg.floss_burst = 0;
    let dir0 = tmp("weight0");
    let plain = run(&cfg, &Engine::Cpu, &dir0, false);
    cfg.floss_weight = 0.5;
    let dir1 = tmp("weight1");
    let weighted = run(&cfg, &Engine::Cpu, &dir1, false);
    // same data, same first loss; the updates differ from the first step on
    assert_eq!(plain[0].step, weighted[0].step);
    assert!(plain.iter().zip(&weighted).skip(1).any(|(a, b)| a.loss != b.loss));
    assert!(weighted.iter().all(|l| l.loss.is_finite()));
    let _ = std::fs::remove_dir_all(&dir0);
    let _ = std::fs::remove_dir_all(&dir1);
}

#[test]
fn gpu_backend_applies_flossing_updates_like_the_cpu() {
    let Some(ctx) = test_context("gpu_backend_applies_flossing_updates_like_the_cpu") else { return };
    let cfg = small_flossing();
    let (dc, dg) = (tmp("cpu"), tmp("gpu"));
    let c = run(&cfg, &Engine::Cpu, &dc, false);
    let g = run(&cfg, &Engine::Gpu(ctx), &dg, false);
    assert_eq!(c.len(), g.len());
    for (a, b) in c.iter().zip(&g) {
        assert_eq!((a.step, &a.phase), (b.step, &b.phase));
        assert!((a.loss - b.loss).abs() <= 1e-4 * a.loss.abs().max(1e-3), "step {} {:?}: cpu {} gpu {}", a.step, a.phase, a.loss, b.loss);
    }
    let _ = std::fs::remove_dir_all(&dc);
    let _ = std::fs::remove_dir_all(&dg);
}

/// A flossing-only run (`steps = 0`) and a run started from it with
/// `init_from` train exactly as one run with `floss_before` does, bursts
/// and all (the flossing optimizer's moments and update count carry over),
/// also on another delay, since flossing sees only the task's inputs.
/// This is what lets a sweep floss once per seed for every delay.
#[test]
fn init_from_a_flossing_only_run_continues_as_one_run() {
    let whole_cfg = small_flossing();
    let mut floss_only = whole_cfg.clone();
    (floss_only.steps, floss_only.delay) = (0, 2);
    let mut rest = whole_cfg.clone();
    rest.floss_before = 0;
    let (dw, df, dr) = (tmp("init-whole"), tmp("init-floss-only"), tmp("init-rest"));
    let whole = run(&whole_cfg, &Engine::Cpu, &dw, false);
    let flossed = run(&floss_only, &Engine::Cpu, &df, false);
    assert!(flossed.iter().all(|l| l.phase.as_deref() == Some("floss")));
    rest.init_from = Some(df.display().to_string());
    let continued = run(&rest, &Engine::Cpu, &dr, false);
    let model = build_model(&whole_cfg).unwrap().1;
    let (a, b) = (Checkpoint::load(&model, &dw.join(CHECKPOINT_FILE)).unwrap(), Checkpoint::load(&model, &dr.join(CHECKPOINT_FILE)).unwrap());
    assert_eq!(a.params, b.params);
    assert_eq!((a.floss_m, a.floss_updates), (b.floss_m, b.floss_updates));
    assert_eq!(a.floss_updates, Some(4 + 3 * 4));
    // the training lines and the bursts' lines match; the flossing-before lines are in the other run
    let key = |v: &[MetricsLine]| v.iter().filter(|l| l.step > 0).map(|l| (l.step, l.phase.clone(), l.loss, l.floss_updates)).collect::<Vec<_>>();
    assert_eq!(key(&whole), key(&continued));
    // wrong shapes and missing runs are refused with the reason
    let mut other = rest.clone();
    other.hidden = 13;
    let e = train_on(&other, &RunOptions { out: tmp("init-bad"), resume: false, verbose: false }, &Engine::Cpu).unwrap_err();
    assert!(format!("{e:#}").contains("hidden 12"), "{e:#}");
    other = rest.clone();
    other.init_from = Some(tmp("init-nowhere").display().to_string());
    let e = train_on(&other, &RunOptions { out: tmp("init-bad2"), resume: false, verbose: false }, &Engine::Cpu).unwrap_err();
    assert!(format!("{e:#}").contains("no checkpoint"), "{e:#}");
    for d in [dw, df, dr, tmp("init-bad"), tmp("init-bad2")] {
        let _ = std::fs::remove_dir_all(&d);
    }
}
