//! The linear-RNN learning-dynamics study (Bordelon, Cotler, Pehlevan,
//! Zavatone-Veth, arXiv 2503.18754): from small weights, plain gradient
//! descent on the exact expected loss grows one outlier eigenvalue of W (or
//! a complex pair) to the filter's timescale after a plateau, while the rest
//! stay in the bulk. These run on the CPU path (the point is the dynamics);
//! one test holds the GPU path's eigenvalue trajectory to the CPU's.

use longmem::analysis::eigs::{read_jsonl, EigRecord};
use longmem::config::TrainConfig;
use longmem::device::Engine;
use longmem::gpu::testing::test_context;
use longmem::real::cast_vec;
use longmem::rng::Rng;
use longmem::tasks::{Batch, FilterKind, Objective, Target};
use longmem::train::cpu::loss_grads;
use longmem::train::metrics::{self, MetricsLine};
use longmem::train::run::{build_model, train_on, RunOptions, EIGS_FILE, EIGS_PLOT, METRICS_FILE, OUTLIER_PLOT};
use std::path::PathBuf;

fn study(filter: FilterKind, decay: f64, horizon: usize, lr: f64, steps: u64, log_every: u64) -> TrainConfig {
    TrainConfig { decay, horizon, lr, steps, log_every, checkpoint_every: steps, ..TrainConfig::study(filter) }
}

struct Run {
    dir: PathBuf,
    metrics: Vec<MetricsLine>,
    eigs: Vec<EigRecord>,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(name: &str, cfg: &TrainConfig, engine: &Engine) -> Run {
    let dir = std::env::temp_dir().join(format!("longmem-dynamics-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    train_on(cfg, &RunOptions { out: dir.clone(), resume: false, verbose: false }, engine).unwrap();
    let metrics = metrics::read(&dir.join(METRICS_FILE)).unwrap();
    let eigs = read_jsonl(&dir.join(EIGS_FILE)).unwrap();
    for f in [EIGS_PLOT, OUTLIER_PLOT, "loss.svg"] {
        let text = std::fs::read_to_string(dir.join(f)).unwrap();
        assert!(text.contains("<svg"), "{name}: {f} is not an SVG");
    }
    Run { dir, metrics, eigs }
}

fn modulus(e: [f64; 2]) -> f64 {
    e[0].hypot(e[1])
}

/// (end of the plateau, end of the drop): the first steps at which the loss
/// falls under 90% and under 5% of where it started.
fn plateau_and_drop(lines: &[MetricsLine]) -> (u64, u64) {
    let l0 = lines[0].loss;
    let plateau = lines.iter().find(|l| l.loss < 0.9 * l0).expect("the loss never left its plateau").step;
    let drop = lines.iter().find(|l| l.loss < 0.05 * l0).expect("the loss never dropped").step;
    (plateau, drop)
}

fn check_leaky(name: &str, decay: f64, horizon: usize, lr: f64, steps: u64, log_every: u64) {
    let r = run(name, &study(FilterKind::Leaky, decay, horizon, lr, steps, log_every), &Engine::Cpu);
    let last = r.eigs.last().unwrap();
    let lead = last.eigs[0];
    eprintln!("{name}: leading eigenvalue {lead:?}, next modulus {:.4}", modulus(last.eigs[1]));
    assert!(lead[1].abs() < 1e-9, "{name}: the outlier should be real, got {lead:?}");
    assert!((lead[0] - decay).abs() < 0.01 * decay, "{name}: outlier {} not within 1% of λ = {decay}", lead[0]);
    for e in &last.eigs[1..] {
        assert!(modulus(*e) < 0.2, "{name}: eigenvalue {e:?} left the bulk");
    }
    // the outlier came out of the bulk: at the start every eigenvalue was small
    assert!(r.eigs[0].eigs.iter().all(|e| modulus(*e) < 0.2));
    let (plateau, drop) = plateau_and_drop(&r.metrics);
    eprintln!("{name}: plateau until step {plateau}, loss under 5% by step {drop}");
    assert!(plateau >= 10 * log_every, "{name}: no plateau (the loss fell by 10% by step {plateau})");
    assert!(drop - plateau <= 3 * plateau / 5, "{name}: the drop ({plateau}..{drop}) is not sharp next to the plateau");
    assert!(last.align_u > 0.9 && last.align_v > 0.9, "{name}: u, v should align with the outlier's eigenvectors: {} {}", last.align_u, last.align_v);
}

#[test]
fn leaky_integrator_0_9() {
    check_leaky("leaky-0.9", 0.9, 60, 5e-3, 1000, 10);
}

#[test]
fn leaky_integrator_0_98() {
    check_leaky("leaky-0.98", 0.98, 150, 8e-5, 40_000, 200);
}

#[test]
fn damped_oscillator_grows_a_complex_pair() {
    let (decay, freq) = (0.95, 0.3);
    let r = run("oscillator", &study(FilterKind::Oscillator, decay, 120, 2e-3, 5000, 50), &Engine::Cpu);
    let last = r.eigs.last().unwrap();
    let (a, b) = (last.eigs[0], last.eigs[1]);
    eprintln!("oscillator: leading pair {a:?} {b:?}");
    for e in [a, b] {
        assert!((modulus(e) - decay).abs() < 0.01 * decay, "modulus {} not within 1% of {decay}", modulus(e));
        assert!((e[1].atan2(e[0]).abs() - freq).abs() < 0.01, "phase {} not within 0.01 rad of ±{freq}", e[1].atan2(e[0]));
    }
    assert!((a[1] + b[1]).abs() < 1e-9 && (a[0] - b[0]).abs() < 1e-9, "not a conjugate pair: {a:?} {b:?}");
    for e in &last.eigs[2..] {
        assert!(modulus(*e) < 0.2, "eigenvalue {e:?} left the bulk");
    }
}

#[test]
fn integrator_outlier_approaches_one_from_below() {
    let horizon = 20;
    // the first outlier fits one exponential to the window; later modes
    // (a complex pair among them) shape its edge, so train well past the drop
    let cfg = study(FilterKind::Integrator, 1.0, horizon, 1e-3, 30_000, 500);
    let r = run("integrator", &cfg, &Engine::Cpu);
    let peak = r.eigs.iter().map(|e| modulus(e.eigs[0])).fold(0.0, f64::max);
    let last = modulus(r.eigs.last().unwrap().eigs[0]);
    eprintln!("integrator: leading modulus peaks at {peak:.4}, ends at {last:.4}");
    assert!(peak < 1.0, "the outlier crossed the unit circle ({peak})");
    assert!(last > 0.9, "the outlier did not approach 1 ({last})");
    // impulse response of the trained network against the window
    let ck = longmem::train::checkpoint::Checkpoint::load(&build_model(&cfg).unwrap().1, &r.dir.join("checkpoint.safetensors")).unwrap();
    let (_, model) = build_model(&cfg).unwrap();
    let task = cfg.task().unwrap();
    let batch = task.batch(1, &mut Rng::seed(0));
    let p: Vec<f64> = cast_vec(&ck.params);
    let (_, _, y) = loss_grads::<f64>(&model, &p, &batch);
    let err: f64 = (0..horizon).map(|k| (y[[k, 0]] - 1.0).powi(2)).sum::<f64>().sqrt() / (horizon as f64).sqrt();
    eprintln!("integrator: RMS impulse-response error over the window {err:.4}");
    assert!(err < 0.2, "impulse response does not match the window (RMS error {err})");
}

#[test]
fn smaller_initial_scale_lengthens_the_plateau() {
    let mut big = study(FilterKind::Leaky, 0.9, 60, 5e-3, 1500, 10);
    big.init_scale = 0.1;
    let mut small = big.clone();
    small.init_scale = 0.03;
    let (pb, _) = plateau_and_drop(&run("scale-big", &big, &Engine::Cpu).metrics);
    let (ps, _) = plateau_and_drop(&run("scale-small", &small, &Engine::Cpu).metrics);
    eprintln!("plateau ends at step {pb} from scale 0.1 and {ps} from scale 0.03");
    assert!(ps > pb + 5 * 10, "a smaller start should plateau longer: {ps} vs {pb}");
}

/// The population objective is the large-batch limit of the sampled one:
/// the last step of a 2K-long white-noise sequence sees every lag < 2K.
#[test]
fn population_objective_is_the_large_batch_limit() {
    let mut cfg = study(FilterKind::Oscillator, 0.9, 10, 1e-3, 1, 1);
    cfg.init_scale = 0.8;
    let (_, model) = build_model(&cfg).unwrap();
    let p: Vec<f64> = cast_vec(&model.init(&cfg.init_config(), &mut Rng::seed(3)));
    let pop_task = cfg.task().unwrap();
    let (lp, gp, _) = loss_grads::<f64>(&model, &p, &pop_task.batch(1, &mut Rng::seed(0)));
    let mut sampled = cfg.clone();
    sampled.objective = Objective::Sampled;
    sampled.seq_len = 20;
    let task = sampled.task().unwrap();
    let mut errs = Vec::new();
    for b in [100usize, 20_000] {
        let mut batch: Batch = task.batch(b, &mut Rng::seed(b as u64));
        // only the last step, and ½ of the mean over the batch
        batch.mask = (0..20 * b).map(|r| if r >= 19 * b { 1.0 } else { 0.0 }).collect();
        batch.loss_norm = Some(0.5 / b as f64);
        let Target::Values(_) = &batch.target else { panic!() };
        let (ls, gs, _) = loss_grads::<f64>(&model, &p, &batch);
        let gerr = gs.iter().zip(&gp).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt() / gp.iter().map(|x| x * x).sum::<f64>().sqrt();
        eprintln!("batch {b}: sampled loss {ls:.5} vs population {lp:.5}, gradient rel err {gerr:.4}");
        errs.push(((ls - lp).abs() / lp, gerr));
    }
    assert!(errs[1].0 < 0.03 && errs[1].1 < 0.05, "large batch should agree: {:?}", errs[1]);
    assert!(errs[1].1 < errs[0].1, "agreement should improve with the batch: {errs:?}");
}

#[test]
fn gpu_and_cpu_eigenvalue_trajectories_agree() {
    let Some(ctx) = test_context("gpu_and_cpu_eigenvalue_trajectories_agree") else { return };
    let cfg = study(FilterKind::Leaky, 0.9, 60, 5e-3, 700, 50);
    let c = run("traj-cpu", &cfg, &Engine::Cpu);
    let g = run("traj-gpu", &cfg, &Engine::Gpu(ctx));
    assert_eq!(c.eigs.len(), g.eigs.len());
    let mut worst = 0.0f64;
    for (a, b) in c.eigs.iter().zip(&g.eigs) {
        assert_eq!(a.step, b.step);
        for (x, y) in a.eigs.iter().zip(&b.eigs).take(3) {
            let d = (x[0] - y[0]).hypot(x[1] - y[1]) / modulus(*x).max(0.05);
            worst = worst.max(d);
            assert!(d < 1e-3, "step {}: cpu {x:?} gpu {y:?}", a.step);
        }
    }
    eprintln!("worst relative eigenvalue difference, GPU vs CPU: {worst:.2e}; final leading {:?}", c.eigs.last().unwrap().eigs[0]);
    assert!((c.eigs.last().unwrap().eigs[0][0] - 0.9).abs() < 0.05, "the short study should have found its outlier");
}
