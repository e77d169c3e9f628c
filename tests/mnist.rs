//! Pixel MNIST on the real files: the loader's counts and statistics, the
//! permuted batches, a short CPU run through the command line that trains,
//! logs accuracy and is evaluated on the whole test split, exact resume, and
//! the GPU path against the CPU reference.

use longmem::config::TrainConfig;
use longmem::data::mnist::{self, Split, PIXELS};
use longmem::device::Engine;
use longmem::gpu::testing::test_context;
use longmem::rng::Rng;
use longmem::tasks::{Target, TaskKind};
use longmem::train::run::RunOptions;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_longmem");

mod common;

fn mnist_dir() -> PathBuf {
    common::data_dir().join("mnist")
}

fn have_mnist(test: &str) -> bool {
    common::have(test, "MNIST", &Split::Train.image_file(&mnist_dir()), "LONGMEM_DATA")
}

fn tmp(name: &str) -> PathBuf {
    common::tmp("mnist-it", name)
}

fn config(task: TaskKind) -> TrainConfig {
    TrainConfig { task, data: Some(mnist_dir().display().to_string()), device: "cpu".into(), ..Default::default() }
}

#[test]
fn real_files_have_the_known_counts_labels_and_pixel_statistics() {
    if !have_mnist("real_files_have_the_known_counts_labels_and_pixel_statistics") {
        return;
    }
    let train = mnist::load(&mnist_dir(), Split::Train).unwrap();
    let test = mnist::load(&mnist_dir(), Split::Test).unwrap();
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    assert_eq!((train.images.len(), test.images.len()), (60_000 * PIXELS, 10_000 * PIXELS));
    assert_eq!(&train.labels[..5], &[5, 0, 4, 1, 9]);
    assert_eq!(&test.labels[..3], &[7, 2, 1]);
    let mut counts = [0usize; 10];
    train.labels.iter().for_each(|&l| counts[l as usize] += 1);
    assert_eq!(counts, [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    // the usual normalisation constants: mean 0.1307, std 0.3081 of pixel/255
    let n = train.images.len() as f64;
    let mean = train.images.iter().map(|&p| p as f64).sum::<f64>() / n / 255.0;
    let var = train.images.iter().map(|&p| (p as f64 / 255.0 - mean).powi(2)).sum::<f64>() / n;
    assert!((mean - 0.1307).abs() < 5e-4, "mean pixel {mean}");
    assert!((var.sqrt() - 0.3081).abs() < 5e-4, "pixel std {}", var.sqrt());
    // the digits are centred in 28x28 with blank borders: no image has ink
    // at the top-left pixel, hardly any (under 0.1%) on the top row
    assert!((0..train.len()).all(|i| train.image(i)[0] == 0));
    let top_row = (0..train.len()).filter(|&i| train.image(i)[..28].iter().any(|&p| p > 0)).count();
    assert!(top_row < 60, "{top_row} images have ink on the top row");
    assert_eq!(*train.images.iter().max().unwrap(), 255);
}

#[test]
fn permuted_batches_are_the_plain_ones_reordered() {
    if !have_mnist("permuted_batches_are_the_plain_ones_reordered") {
        return;
    }
    let plain = config(TaskKind::Mnist).task().unwrap();
    let permuted = TrainConfig { perm_seed: 11, ..config(TaskKind::Pmnist) }.task().unwrap();
    let other = TrainConfig { perm_seed: 12, ..config(TaskKind::Pmnist) }.task().unwrap();
    let perm = permuted.mnist.as_ref().unwrap().perm.clone().unwrap();
    assert_ne!(Some(&perm), other.mnist.as_ref().unwrap().perm.as_ref(), "the seed chooses the permutation");
    assert_eq!((plain.seq_len(), plain.input_width(), plain.output_width()), (784, 1, 10));
    let (a, b) = (plain.batch(8, &mut Rng::seed(4)), permuted.batch(8, &mut Rng::seed(4)));
    assert_eq!(a.x.dim(), (784, 8, 1));
    let mut moved = 0;
    for j in 0..8 {
        for (t, &pt) in perm.iter().enumerate() {
            assert_eq!(b.x[[t, j, 0]], a.x[[pt as usize, j, 0]]);
            moved += (b.x[[t, j, 0]] != a.x[[t, j, 0]]) as usize;
        }
    }
    assert!(moved > 1000, "the permuted pixels differ from the plain ones at only {moved} places");
    assert_eq!(a.target, b.target);
    let Target::Classes(cls) = &a.target else { panic!("classes") };
    assert!(cls[783 * 8..].iter().all(|&c| c < 10));
    assert_eq!(a.mask.iter().sum::<f32>(), 8.0);
}

fn run(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).env_remove("LONGMEM_ADAPTER").output().unwrap();
    let text = format!("longmem {}\n{}\n{}", args.join(" "), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A tiny tanh RNN on the first 2,000 training images for 30 steps: the run
/// completes, its metrics carry accuracy, and eval reads the whole
/// validation and test splits.
#[test]
fn short_cpu_run_trains_logs_accuracy_and_evaluates_on_the_test_split() {
    if !have_mnist("short_cpu_run_trains_logs_accuracy_and_evaluates_on_the_test_split") {
        return;
    }
    let dir = tmp("run");
    let data = mnist_dir().display().to_string();
    let out = dir.display().to_string();
    #[rustfmt::skip]
    run(&["train", "--task", "mnist", "--data", &data, "--model", "rnn", "--device", "cpu", "--hidden", "16", "--batch", "16",
          "--steps", "30", "--train-examples", "2000", "--log-every", "10", "--out", &out, "--quiet"]);
    let lines = longmem::train::metrics::read(&dir.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.iter().map(|l| l.step).collect::<Vec<_>>(), vec![10, 20, 30]);
    for l in &lines {
        let acc = l.accuracy.expect("an MNIST metrics line carries accuracy");
        assert!((0.0..=1.0).contains(&acc) && l.loss.is_finite(), "{l:?}");
        assert_eq!(l.baseline_loss, Some(10f64.ln()));
    }
    let cfg = TrainConfig::load(&dir.join("config.toml")).unwrap();
    assert_eq!((cfg.task, cfg.seq_len, cfg.train_examples), (TaskKind::Mnist, 784, Some(2000)));

    let r: Value = serde_json::from_str(&run(&["eval", "--run", &out, "--json"])).unwrap();
    assert_eq!(r["examples"]["test"], 10_000, "{r}");
    assert_eq!(r["examples"]["valid"], 5_000, "{r}");
    assert_eq!(r["step"], 30);
    for split in ["valid", "test"] {
        let acc = r["accuracy"][split].as_f64().unwrap();
        let loss = r["loss"][split].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc), "{split} accuracy {acc}");
        assert!(loss.is_finite() && loss > 0.0, "{split} loss {loss}");
        // an accuracy over whole images is a multiple of 1/n
        let n = r["examples"][split].as_f64().unwrap();
        assert!((acc * n - (acc * n).round()).abs() < 1e-6, "{split} accuracy {acc} over {n} images");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Checks that need no data: the MNIST tasks ask for --data and name a missing file.
#[test]
fn mnist_settings_are_checked() {
    let c = TrainConfig { data: None, ..config(TaskKind::Mnist) };
    let e = format!("{:#}", c.validate().unwrap_err());
    assert!(e.contains("--data") && e.contains("train-images-idx3-ubyte.gz"), "{e}");
    let c = TrainConfig { train_examples: Some(0), ..config(TaskKind::Pmnist) };
    assert!(format!("{:#}", c.validate().unwrap_err()).contains("--train-examples"));
    let missing = tmp("none");
    let c = TrainConfig { data: Some(missing.display().to_string()), ..config(TaskKind::Mnist) };
    c.validate().unwrap();
    let e = format!("{:#}", c.task().unwrap_err());
    assert!(e.contains(&Split::Train.image_file(Path::new(&missing)).display().to_string()), "{e}");
    assert_eq!(TaskKind::parse("pmnist").unwrap(), TaskKind::Pmnist);
}

fn train_cpu_or_gpu(cfg: &TrainConfig, engine: &Engine, dir: &Path, resume: bool) {
    let opts = RunOptions { out: dir.to_path_buf(), resume, verbose: false };
    longmem::train::run::train_on(cfg, &opts, engine).unwrap();
}

fn checkpoint_params(dir: &Path) -> Vec<f32> {
    let cfg = TrainConfig::load(&dir.join("config.toml")).unwrap();
    let (_, model) = longmem::train::run::build_model(&cfg).unwrap();
    longmem::train::checkpoint::Checkpoint::load(&model, &dir.join("checkpoint.safetensors")).unwrap().params
}

/// Minibatches come from the run's checkpointed data stream: 10 steps, then
/// a resume to 20, ends with exactly the parameters of 20 steps in one go.
#[test]
fn a_resumed_pmnist_run_continues_exactly() {
    if !have_mnist("a_resumed_pmnist_run_continues_exactly") {
        return;
    }
    let cfg = TrainConfig { hidden: 8, batch: 8, steps: 20, checkpoint_every: 10, log_every: 5, train_examples: Some(500), ..config(TaskKind::Pmnist) };
    let (whole, split) = (tmp("whole"), tmp("split"));
    train_cpu_or_gpu(&cfg, &Engine::Cpu, &whole, false);
    train_cpu_or_gpu(&TrainConfig { steps: 10, ..cfg.clone() }, &Engine::Cpu, &split, false);
    train_cpu_or_gpu(&cfg, &Engine::Cpu, &split, true);
    assert_eq!(checkpoint_params(&whole), checkpoint_params(&split));
    let loss = |d: &Path| longmem::train::metrics::read(&d.join("metrics.jsonl")).unwrap().iter().map(|l| l.loss).collect::<Vec<_>>();
    assert_eq!(loss(&whole), loss(&split));
    for d in [whole, split] {
        std::fs::remove_dir_all(&d).ok();
    }
}

/// The GPU kernels see the same 784-step batches as the CPU reference and
/// follow it step for step.
#[test]
fn cpu_and_gpu_mnist_runs_agree() {
    if !have_mnist("cpu_and_gpu_mnist_runs_agree") {
        return;
    }
    let Some(ctx) = test_context("cpu_and_gpu_mnist_runs_agree") else { return };
    let cfg = TrainConfig { hidden: 16, batch: 16, steps: 10, log_every: 5, train_examples: Some(2000), ..config(TaskKind::Mnist) };
    let (c, g) = (tmp("cpu"), tmp("gpu"));
    train_cpu_or_gpu(&cfg, &Engine::Cpu, &c, false);
    train_cpu_or_gpu(&cfg, &Engine::Gpu(ctx), &g, false);
    let read = |d: &Path| longmem::train::metrics::read(&d.join("metrics.jsonl")).unwrap();
    let (lc, lg) = (read(&c), read(&g));
    assert_eq!(lc.len(), 2);
    for (a, b) in lc.iter().zip(&lg) {
        assert!((a.loss - b.loss).abs() < 1e-3 * a.loss, "step {}: cpu loss {} vs gpu {}", a.step, a.loss, b.loss);
        assert_eq!(a.accuracy, b.accuracy, "step {}", a.step);
    }
    for d in [c, g] {
        std::fs::remove_dir_all(&d).ok();
    }
}
