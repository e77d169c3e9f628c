//! The `longmem` command line end to end: the built binary is run in
//! temporary directories and its files, JSON output, exit codes and error
//! messages are checked. Everything trains tiny models on the CPU path
//! (`--device cpu`) except the `--device gpu` tests.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_longmem");

/// A fresh directory under the system temp dir, removed when dropped
/// (also when the test panics).
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        let p = std::env::temp_dir().join(format!("longmem-cli-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Small, fast settings for every CPU training run.
const SMALL: &[&str] = &["--device", "cpu", "--hidden", "8", "--batch", "4", "--seq-len", "5"];

fn longmem_env(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(cwd).env_remove("LONGMEM_ADAPTER");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"))
}

fn longmem(cwd: &Path, args: &[&str]) -> Output {
    longmem_env(cwd, args, &[])
}

fn describe(args: &[&str], out: &Output) -> String {
    format!(
        "longmem {}\nexit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Run and require success.
fn ok(cwd: &Path, args: &[&str]) -> Output {
    let out = longmem(cwd, args);
    assert!(out.status.success(), "expected success:\n{}", describe(args, &out));
    out
}

/// `train` with the small settings plus `extra`, into `dir`.
fn train(cwd: &Path, dir: &Path, extra: &[&str]) -> Output {
    let d = dir.to_str().unwrap();
    let mut args = vec!["train", "--out", d];
    args.extend_from_slice(SMALL);
    args.extend_from_slice(extra);
    ok(cwd, &args)
}

/// Run, require a clean error: exit code 1 (not a panic's 101), stderr
/// starting with `error:`, naming every one of `needles`, no panic text.
fn fails(cwd: &Path, args: &[&str], needles: &[&str]) -> String {
    let out = longmem(cwd, args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let d = describe(args, &out);
    assert_ne!(out.status.code(), Some(101), "panicked instead of reporting an error:\n{d}");
    assert_eq!(out.status.code(), Some(1), "expected exit code 1:\n{d}");
    assert!(stderr.starts_with("error:"), "stderr should start with 'error:':\n{d}");
    assert!(!stderr.contains("panicked"), "panic text in stderr:\n{d}");
    for n in needles {
        assert!(stderr.contains(n), "stderr should mention {n:?}:\n{d}");
    }
    stderr
}

fn json_stdout(args: &[&str], out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", describe(args, out)))
}

fn read_metrics(dir: &Path) -> Vec<Value> {
    let path = dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("metrics line {} is not JSON ({e}): {l}", i + 1)))
        .collect()
}

fn num(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or_else(|| panic!("{key:?} missing or not a number in {v}"))
}

/// The JSON header of a safetensors file (8-byte little-endian length, then JSON).
fn safetensors_header(bytes: &[u8]) -> (Value, usize) {
    assert!(bytes.len() >= 8, "checkpoint is only {} bytes", bytes.len());
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert!(8 + n <= bytes.len(), "header length {n} runs past the file ({} bytes)", bytes.len());
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).expect("checkpoint header is JSON");
    (header, 8 + n)
}

fn copy_baseline() -> f64 {
    10.0 * 8f64.ln() / 25.0
}

// ---------------------------------------------------------------- train

#[test]
fn train_writes_config_metrics_checkpoint_and_plot() {
    let tmp = TempDir::new("train_writes");
    let run = tmp.join("run");
    let out = train(tmp.path(), &run, &["--task", "copy", "--steps", "20", "--log-every", "5", "--seed", "3"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("device: cpu"), "verbose run should name its device:\n{stderr}");

    // config.toml: fully resolved, with our flags in it
    let config = std::fs::read_to_string(run.join("config.toml")).expect("config.toml");
    for line in ["task = \"copy\"", "seq_len = 5", "hidden = 8", "batch = 4", "steps = 20", "seed = 3", "device = \"cpu\""] {
        assert!(config.lines().any(|l| l.trim() == line), "config.toml lacks `{line}`:\n{config}");
    }

    // metrics.jsonl: one line per 5 steps, every key present and sane
    let lines = read_metrics(&run);
    let steps: Vec<u64> = lines.iter().map(|l| l["step"].as_u64().expect("integer step")).collect();
    assert_eq!(steps, vec![5, 10, 15, 20]);
    for l in &lines {
        for key in ["loss", "baseline_loss", "elapsed_s", "steps_per_s", "accuracy"] {
            assert!(num(l, key).is_finite(), "{key} not finite in {l}");
        }
        assert!(num(l, "loss") > 0.0, "{l}");
        assert!(num(l, "elapsed_s") >= 0.0 && num(l, "steps_per_s") > 0.0, "{l}");
        let acc = num(l, "accuracy");
        assert!((0.0..=1.0).contains(&acc), "accuracy {acc} outside [0, 1]");
        // copy task, T = 5: 10 symbols of ln 8 each over T + 20 outputs
        let b = num(l, "baseline_loss");
        assert!((b - copy_baseline()).abs() < 1e-12, "baseline_loss {b}, expected {}", copy_baseline());
    }
    let elapsed: Vec<f64> = lines.iter().map(|l| num(l, "elapsed_s")).collect();
    assert!(elapsed.windows(2).all(|w| w[0] <= w[1]), "elapsed_s goes backwards: {elapsed:?}");

    // checkpoint.safetensors: a safetensors file at step 20
    let ck = std::fs::read(run.join("checkpoint.safetensors")).expect("checkpoint.safetensors");
    let (header, data_start) = safetensors_header(&ck);
    let meta = &header["__metadata__"];
    assert_eq!(meta["step"], "20", "{header}");
    assert_eq!(meta["model"], "rnn", "{header}");
    assert_eq!(meta["hidden"], "8", "{header}");
    assert!(ck.len() > data_start, "checkpoint has no tensor data");

    // loss.svg
    let svg = std::fs::read_to_string(run.join("loss.svg")).expect("loss.svg");
    let head = svg.trim_start();
    assert!(head.starts_with("<svg") || head.starts_with("<?xml"), "loss.svg does not look like SVG: {}", &svg[..svg.len().min(80)]);
    assert!(svg.contains("</svg>"), "loss.svg is not complete");

    // no stray temporary files
    let names: Vec<String> = std::fs::read_dir(&run).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "temporary files left behind: {names:?}");
}

#[test]
fn train_quiet_prints_only_a_json_summary() {
    let tmp = TempDir::new("train_quiet");
    let run = tmp.join("run");
    let args = ["train", "--out", run.to_str().unwrap(), "--device", "cpu", "--hidden", "8", "--batch", "4", "--seq-len", "5", "--task", "adding", "--steps", "10", "-q"];
    let out = ok(tmp.path(), &args);
    assert!(out.stderr.is_empty(), "--quiet wrote to stderr:\n{}", describe(&args, &out));
    let s = json_stdout(&args, &out);
    assert_eq!(s["steps"].as_u64(), Some(10), "{s}");
    assert!(num(&s, "final_loss").is_finite(), "{s}");
    assert!((num(&s, "baseline_loss") - 1.0 / 6.0).abs() < 1e-12, "{s}");
    // the adding task has no accuracy
    assert!(read_metrics(&run).iter().all(|l| l.get("accuracy").is_none()));
}

// ---------------------------------------------------------------- resume

/// Train A in one go for 40 steps, B for 20 then resumed to 40.
fn resume_pair(tmp: &TempDir) -> (PathBuf, PathBuf) {
    let (a, b) = (tmp.join("a"), tmp.join("b"));
    let common = ["--task", "copy", "--seed", "11", "--log-every", "10", "--checkpoint-every", "20", "-q"];
    let mut args_a = common.to_vec();
    args_a.extend(["--steps", "40"]);
    train(tmp.path(), &a, &args_a);
    let mut args_b = common.to_vec();
    args_b.extend(["--steps", "20"]);
    train(tmp.path(), &b, &args_b);
    ok(tmp.path(), &["train", "--resume", b.to_str().unwrap(), "--steps", "40", "-q"]);
    (a, b)
}

#[test]
fn resumed_run_matches_an_uninterrupted_one() {
    let tmp = TempDir::new("resume_exact");
    let (a, b) = resume_pair(&tmp);

    let (ma, mb) = (read_metrics(&a), read_metrics(&b));
    let steps = |m: &[Value]| m.iter().map(|l| l["step"].as_u64().unwrap()).collect::<Vec<_>>();
    assert_eq!(steps(&ma), vec![10, 20, 30, 40]);
    assert_eq!(steps(&mb), steps(&ma), "resumed metrics have other steps");
    for (la, lb) in ma.iter().zip(&mb) {
        for key in ["loss", "accuracy", "grad_norm", "lr", "baseline_loss"] {
            // exact f64 equality: the CPU path is deterministic
            assert_eq!(num(la, key).to_bits(), num(lb, key).to_bits(), "{key} differs at step {}: {} vs {}", la["step"], la[key], lb[key]);
        }
    }
    let (ca, cb) = (std::fs::read_to_string(a.join("config.toml")).unwrap(), std::fs::read_to_string(b.join("config.toml")).unwrap());
    assert_eq!(ca, cb, "the resumed run's config.toml differs");

    // the final checkpoints hold the same tensors and metadata
    let (ka, kb) = (std::fs::read(a.join("checkpoint.safetensors")).unwrap(), std::fs::read(b.join("checkpoint.safetensors")).unwrap());
    let ((ha, sa), (hb, sb)) = (safetensors_header(&ka), safetensors_header(&kb));
    assert_eq!(ha["__metadata__"]["step"], "40");
    assert_eq!(ha, hb, "checkpoint headers differ");
    assert!(ka[sa..] == kb[sb..], "checkpoint tensor data differs");
}

/// The brief asks for byte-identical final checkpoints. This fails while
/// the checkpoint metadata is written from a HashMap (random key order per
/// process), even though the tensors and metadata are equal.
#[test]
fn resumed_checkpoint_is_byte_identical() {
    let tmp = TempDir::new("resume_bytes");
    let (a, b) = resume_pair(&tmp);
    let (ka, kb) = (std::fs::read(a.join("checkpoint.safetensors")).unwrap(), std::fs::read(b.join("checkpoint.safetensors")).unwrap());
    assert_eq!(ka.len(), kb.len(), "checkpoint sizes differ");
    if let Some(i) = ka.iter().zip(&kb).position(|(x, y)| x != y) {
        let (_, sa) = safetensors_header(&ka);
        panic!(
            "checkpoints differ from byte {i} ({}); headers:\n{}\n{}",
            if i < sa { "in the JSON header" } else { "in the tensor data" },
            String::from_utf8_lossy(&ka[8..sa]).trim_end(),
            String::from_utf8_lossy(&kb[8..sa]).trim_end()
        );
    }
}

// ---------------------------------------------------------------- eval

#[test]
fn eval_json_reports_loss_baseline_step_and_accuracy() {
    let tmp = TempDir::new("eval_json");
    let copy = tmp.join("copy");
    train(tmp.path(), &copy, &["--task", "copy", "--steps", "20", "-q"]);
    let args = ["eval", "--run", copy.to_str().unwrap(), "--json", "--batches", "3"];
    let r = json_stdout(&args, &ok(tmp.path(), &args));
    assert!(num(&r, "loss").is_finite() && num(&r, "loss") > 0.0, "{r}");
    assert!((num(&r, "baseline_loss") - copy_baseline()).abs() < 1e-12, "{r}");
    assert_eq!(r["step"].as_u64(), Some(20), "{r}");
    let acc = num(&r, "accuracy");
    assert!((0.0..=1.0).contains(&acc), "accuracy {acc} outside [0, 1]");

    // same seed, same answer; the plain-text form works too
    let again = json_stdout(&args, &ok(tmp.path(), &args));
    assert_eq!(r["loss"], again["loss"], "eval is not deterministic on the CPU path");
    let text = ok(tmp.path(), &["eval", "--run", copy.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("step 20") && text.contains("accuracy"), "{text}");

    // the adding task: no accuracy, baseline 1/6, and the step after a resume
    let adding = tmp.join("adding");
    train(tmp.path(), &adding, &["--task", "adding", "--steps", "10", "-q"]);
    ok(tmp.path(), &["train", "--resume", adding.to_str().unwrap(), "--steps", "15", "-q"]);
    let args = ["eval", "--run", adding.to_str().unwrap(), "--json"];
    let r = json_stdout(&args, &ok(tmp.path(), &args));
    assert!(num(&r, "loss").is_finite(), "{r}");
    assert!((num(&r, "baseline_loss") - 1.0 / 6.0).abs() < 1e-12, "{r}");
    assert_eq!(r["step"].as_u64(), Some(15), "{r}");
    assert!(r.get("accuracy").is_none(), "the adding task has no accuracy: {r}");
}

// ---------------------------------------------------------------- info

fn info_json(cwd: &Path, env: &[(&str, &str)]) -> Value {
    let args = ["info", "--json"];
    let out = longmem_env(cwd, &args, env);
    assert!(out.status.success(), "{}", describe(&args, &out));
    json_stdout(&args, &out)
}

#[test]
fn info_json_lists_adapters_with_limits_and_features() {
    let tmp = TempDir::new("info_json");
    let v = info_json(tmp.path(), &[]);
    let adapters = v["adapters"].as_array().unwrap_or_else(|| panic!("no adapters array: {v}"));
    for (i, a) in adapters.iter().enumerate() {
        assert_eq!(a["index"].as_u64(), Some(i as u64), "{a}");
        for key in ["name", "backend", "device_type", "driver"] {
            assert!(a[key].is_string(), "{key} is not a string in {a}");
        }
        assert!(!a["name"].as_str().unwrap().is_empty(), "{a}");
        let limits = a["limits"].as_object().unwrap_or_else(|| panic!("limits is not an object in {a}"));
        for key in ["max_compute_workgroup_storage_size", "max_storage_buffer_binding_size", "max_buffer_size", "max_compute_invocations_per_workgroup"] {
            let n = limits.get(key).and_then(Value::as_u64).unwrap_or_else(|| panic!("limits.{key} missing in {a}"));
            assert!(n > 0, "limits.{key} is 0 in {a}");
        }
        let features = a["features"].as_array().unwrap_or_else(|| panic!("features is not an array in {a}"));
        assert!(features.iter().all(Value::is_string), "{a}");
    }
    match v.get("auto").filter(|x| !x.is_null()) {
        Some(auto) => assert!((auto.as_u64().expect("auto is an index") as usize) < adapters.len(), "{v}"),
        None => assert!(adapters.is_empty(), "adapters exist but none is picked for --device auto: {v}"),
    }
    // the plain-text form works too
    let out = ok(tmp.path(), &["info"]);
    assert!(!out.stdout.is_empty());
}

// ---------------------------------------------------------------- errors

#[test]
fn unknown_task_model_and_flag_are_errors() {
    let tmp = TempDir::new("unknown_names");
    let run = tmp.join("run");
    let r = run.to_str().unwrap();
    fails(tmp.path(), &["train", "--out", r, "--device", "cpu", "--task", "sorting", "-q"], &["sorting"]);
    fails(tmp.path(), &["train", "--out", r, "--device", "cpu", "--model", "transformer", "-q"], &["transformer"]);
    fails(tmp.path(), &["train", "--out", r, "--device", "cpu", "--optimizer", "adagrad", "-q"], &["adagrad"]);
    fails(tmp.path(), &["train", "--out", r, "--device", "tpu", "-q"], &["tpu"]);
    fails(tmp.path(), &["train", "--out", r, "--device", "cpu", "--lr-decay-every", "10", "-q"], &["--lr-decay"]);
    assert!(!run.exists(), "a rejected command created the run directory");

    // clap rejects unknown flags itself (exit code 2), but never panics
    let args = ["train", "--out", r, "--no-such-flag"];
    let out = longmem(tmp.path(), &args);
    assert!(!out.status.success(), "{}", describe(&args, &out));
    assert_ne!(out.status.code(), Some(101), "panicked:\n{}", describe(&args, &out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"), "{}", describe(&args, &out));
}

#[test]
fn bad_config_files_are_errors() {
    let tmp = TempDir::new("bad_config");
    let run = tmp.join("run");
    let cfg = tmp.join("c.toml");
    let args = |c: &Path| vec!["train".to_string(), "--out".into(), run.to_str().unwrap().into(), "--config".into(), c.to_str().unwrap().into(), "-q".into()];
    let call = |c: &Path, needles: &[&str]| {
        let a = args(c);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        fails(tmp.path(), &a, needles)
    };
    std::fs::write(&cfg, "device = \"cpu\"\nhiden = 3\n").unwrap();
    call(&cfg, &["hiden", "c.toml"]);
    std::fs::write(&cfg, "device = \"cpu\"\nhidden = \"many\"\n").unwrap();
    call(&cfg, &["hidden", "c.toml"]);
    std::fs::write(&cfg, "device = \"cpu\"\ntask = \"sorting\"\n").unwrap();
    call(&cfg, &["sorting"]);
    std::fs::write(&cfg, "device = \"cpu\"\nhidden = 0\n").unwrap();
    call(&cfg, &["--hidden"]);
    call(&tmp.join("missing.toml"), &["missing.toml"]);
    assert!(!run.exists(), "a rejected command created the run directory");

    // a good config file is used, and flags override it
    std::fs::write(&cfg, "device = \"cpu\"\ntask = \"copy\"\nseq_len = 5\nhidden = 6\nbatch = 4\nsteps = 5\n").unwrap();
    let c = cfg.to_str().unwrap();
    ok(tmp.path(), &["train", "--out", run.to_str().unwrap(), "--config", c, "--hidden", "7", "-q"]);
    let written = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(written.lines().any(|l| l.trim() == "hidden = 7"), "{written}");
    assert!(written.lines().any(|l| l.trim() == "task = \"copy\""), "{written}");
}

#[test]
fn negative_learning_rate_is_an_error() {
    let tmp = TempDir::new("negative_lr_eq");
    let run = tmp.join("run");
    fails(tmp.path(), &["train", "--out", run.to_str().unwrap(), "--device", "cpu", "--lr=-1", "-q"], &["--lr"]);
    fails(tmp.path(), &["train", "--out", run.to_str().unwrap(), "--device", "cpu", "--lr", "0", "-q"], &["--lr"]);
    assert!(!run.exists());
}

/// `--lr -1` (value as a separate word) must reach the validation too,
/// not be taken by clap for an unknown short flag `-1` (exit code 2).
#[test]
fn negative_learning_rate_as_separate_word_is_an_error() {
    let tmp = TempDir::new("negative_lr_word");
    let run = tmp.join("run");
    fails(tmp.path(), &["train", "--out", run.to_str().unwrap(), "--device", "cpu", "--lr", "-1", "-q"], &["--lr"]);
}

#[test]
fn resuming_something_that_is_not_a_run_is_an_error() {
    let tmp = TempDir::new("resume_not_run");
    let empty = tmp.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    fails(tmp.path(), &["train", "--resume", empty.to_str().unwrap(), "-q"], &["resume", "empty"]);
    let missing = tmp.join("missing");
    fails(tmp.path(), &["train", "--resume", missing.to_str().unwrap(), "-q"], &["resume", "missing"]);
    fails(tmp.path(), &["eval", "--run", missing.to_str().unwrap(), "--json"], &["missing"]);
    assert!(!missing.exists(), "resuming a missing directory created it");
}

#[test]
fn corrupt_checkpoint_is_an_error() {
    let tmp = TempDir::new("corrupt_ck");
    let run = tmp.join("run");
    train(tmp.path(), &run, &["--task", "copy", "--steps", "10", "-q"]);
    let ck = run.join("checkpoint.safetensors");
    let data = std::fs::read(&ck).unwrap();
    std::fs::write(&ck, &data[..data.len() / 2]).unwrap();
    let r = run.to_str().unwrap();
    fails(tmp.path(), &["train", "--resume", r, "--steps", "20", "-q"], &["checkpoint"]);
    fails(tmp.path(), &["eval", "--run", r, "--json"], &["checkpoint"]);
    // the failed resume did not touch the run's metrics
    let steps: Vec<u64> = read_metrics(&run).iter().map(|l| l["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, vec![10]);

    // a checkpoint of another shape is refused too
    std::fs::remove_file(&ck).unwrap();
    let other = tmp.join("other");
    ok(tmp.path(), &["train", "--out", other.to_str().unwrap(), "--device", "cpu", "--hidden", "9", "--batch", "4", "--seq-len", "5", "--task", "copy", "--steps", "5", "-q"]);
    std::fs::copy(other.join("checkpoint.safetensors"), &ck).unwrap();
    fails(tmp.path(), &["train", "--resume", r, "--steps", "20", "-q"], &["checkpoint", "hidden 9"]);
}

#[test]
fn training_into_an_existing_run_needs_resume() {
    let tmp = TempDir::new("existing_run");
    let run = tmp.join("run");
    train(tmp.path(), &run, &["--task", "adding", "--steps", "5", "-q"]);
    let before = std::fs::read(run.join("checkpoint.safetensors")).unwrap();
    let r = run.to_str().unwrap();
    let mut args = vec!["train", "--out", r];
    args.extend_from_slice(SMALL);
    args.extend(["--task", "adding", "--steps", "5", "-q"]);
    fails(tmp.path(), &args, &["--resume"]);
    assert_eq!(std::fs::read(run.join("checkpoint.safetensors")).unwrap(), before, "the refused run overwrote the checkpoint");
    assert_eq!(read_metrics(&run).len(), 1, "the refused run appended metrics");
}

#[test]
fn diverging_training_stops_with_an_error() {
    let tmp = TempDir::new("nan");
    let run = tmp.join("run");
    let mut args = vec!["train", "--out", run.to_str().unwrap()];
    args.extend_from_slice(SMALL);
    args.extend(["--task", "adding", "--lr", "1e30", "--clip", "0", "--optimizer", "sgd", "--steps", "200", "--log-every", "1", "--checkpoint-every", "1000", "-q"]);
    let stderr = fails(tmp.path(), &args, &["step", "stopped"]);
    assert!(stderr.contains("NaN") || stderr.contains("inf"), "the message should say what became non-finite:\n{stderr}");
    // every line that was logged is finite
    if run.join("metrics.jsonl").exists() {
        for l in read_metrics(&run) {
            assert!(num(&l, "loss").is_finite(), "a non-finite loss was logged: {l}");
        }
    }
}

// ---------------------------------------------------------------- gpu

#[test]
fn device_gpu_trains_or_names_the_driver_package() {
    let tmp = TempDir::new("device_gpu");
    let adapters = info_json(tmp.path(), &[])["adapters"].as_array().expect("adapters array").len();
    let run = tmp.join("run");
    let mut args = vec!["train", "--out", run.to_str().unwrap(), "--device", "gpu", "--hidden", "8", "--batch", "4", "--seq-len", "5"];
    if adapters == 0 {
        assert!(
            std::env::var("LONGMEM_REQUIRE_GPU").map(|v| v != "1").unwrap_or(true),
            "LONGMEM_REQUIRE_GPU=1 but `longmem info --json` lists no adapters"
        );
        args.push("-q");
        let out = longmem(tmp.path(), &args);
        let d = describe(&args, &out);
        assert_eq!(out.status.code(), Some(1), "{d}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("mesa-vulkan-drivers"), "{d}");
    } else {
        args.extend(["--task", "copy", "--steps", "10", "--log-every", "5"]);
        let out = ok(tmp.path(), &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("device:"), "{stderr}");
        assert!(!stderr.contains("device: cpu"), "--device gpu ran on the CPU path:\n{stderr}");
        let lines = read_metrics(&run);
        assert_eq!(lines.iter().map(|l| l["step"].as_u64().unwrap()).collect::<Vec<_>>(), vec![5, 10]);
        assert!(lines.iter().all(|l| num(l, "loss").is_finite()), "{lines:?}");
        assert!(run.join("checkpoint.safetensors").exists());
        // and the GPU checkpoint evaluates on the CPU path
        let eargs = ["eval", "--run", run.to_str().unwrap(), "--device", "cpu", "--json"];
        let r = json_stdout(&eargs, &ok(tmp.path(), &eargs));
        assert_eq!(r["step"].as_u64(), Some(10), "{r}");
    }
}

/// With the Vulkan loader pointed at no driver (where that hides every
/// adapter), `--device gpu` must explain how to get one.
#[test]
fn device_gpu_without_adapters_names_the_driver_package() {
    let tmp = TempDir::new("device_gpu_hidden");
    let hide = [("VK_ICD_FILENAMES", "/nonexistent/longmem-no-icd.json"), ("VK_DRIVER_FILES", "/nonexistent/longmem-no-icd.json")];
    let adapters = info_json(tmp.path(), &hide)["adapters"].as_array().expect("adapters array").len();
    if adapters > 0 {
        eprintln!("the loader variables do not hide this machine's adapters (not Vulkan?); nothing to check");
        return;
    }
    let run = tmp.join("run");
    let args = ["train", "--out", run.to_str().unwrap(), "--device", "gpu", "--hidden", "8", "--batch", "4", "--seq-len", "5", "--steps", "5", "-q"];
    let out = longmem_env(tmp.path(), &args, &hide);
    let d = describe(&args, &out);
    assert_eq!(out.status.code(), Some(1), "{d}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.lines().any(|l| l.starts_with("error:") && l.contains("--device gpu")), "{d}");
    assert!(stderr.contains("mesa-vulkan-drivers"), "{d}");
    assert!(!run.join("checkpoint.safetensors").exists(), "{d}");
    // --device auto falls back to the CPU path instead
    let args = ["train", "--out", run.to_str().unwrap(), "--device", "auto", "--hidden", "8", "--batch", "4", "--seq-len", "5", "--steps", "5"];
    let out = longmem_env(tmp.path(), &args, &hide);
    assert!(out.status.success(), "{}", describe(&args, &out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("device: cpu"), "{}", describe(&args, &out));
}

#[test]
fn resume_refuses_to_go_backwards_or_mix_flags() {
    let tmp = TempDir::new("resume_rules");
    let run = tmp.join("run");
    train(tmp.path(), &run, &["--task", "adding", "--steps", "10", "-q"]);
    let config_before = std::fs::read_to_string(run.join("config.toml")).unwrap();
    let r = run.to_str().unwrap();
    fails(tmp.path(), &["train", "--resume", r, "--steps", "5", "-q"], &["already at step 10"]);
    fails(tmp.path(), &["train", "--resume", r, "--steps", "10", "-q"], &["already at step 10"]);
    let other = tmp.join("elsewhere");
    fails(tmp.path(), &["train", "--resume", r, "--out", other.to_str().unwrap(), "--steps", "20"], &["--out"]);
    assert!(!other.exists(), "--out was acted on");
    assert_eq!(std::fs::read_to_string(run.join("config.toml")).unwrap(), config_before, "a refused resume rewrote config.toml");
    ok(tmp.path(), &["train", "--resume", r, "--steps", "15", "-q"]);
    assert_eq!(read_metrics(&run).last().unwrap()["step"].as_u64(), Some(15));
}

#[test]
fn lyapunov_on_a_fresh_model_and_on_a_run() {
    let tmp = TempDir::new("lyapunov");
    let out = tmp.join("spec");
    let args = ["lyapunov", "--hidden", "16", "--gain", "3", "--steps", "300", "--k", "5", "--device", "cpu", "--out", out.to_str().unwrap(), "--json"];
    let r = json_stdout(&args, &ok(tmp.path(), &args));
    let ex: Vec<f64> = r["exponents"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(ex.len(), 5);
    assert!(ex.windows(2).all(|w| w[0] >= w[1]), "not sorted: {ex:?}");
    assert!((num(&r, "sum") - ex.iter().sum::<f64>()).abs() < 1e-9);
    assert_eq!(r["k"].as_u64(), Some(5));
    assert_eq!(r["steps"].as_u64(), Some(300));
    assert!(ex[0] > 0.0, "g = 3 is chaotic: {ex:?}");
    assert!(!r["running_lambda1"].as_array().unwrap().is_empty());
    let file: Value = serde_json::from_str(&std::fs::read_to_string(out.join("lyapunov.json")).unwrap()).unwrap();
    assert_eq!(file["exponents"], r["exponents"]);
    assert!(std::fs::read_to_string(out.join("lyapunov.svg")).unwrap().contains("<svg"));

    // on a trained run's checkpoint, written into the run directory
    let run = tmp.join("run");
    train(tmp.path(), &run, &["--task", "adding", "--steps", "5", "-q"]);
    let args = ["lyapunov", "--run", run.to_str().unwrap(), "--steps", "50", "--k", "3", "--input", "task", "--device", "cpu"];
    let o = ok(tmp.path(), &args);
    assert!(String::from_utf8_lossy(&o.stdout).contains("λ1"));
    assert!(run.join("lyapunov.json").exists() && run.join("lyapunov.svg").exists());

    fails(tmp.path(), &["lyapunov", "--hidden", "8", "--k", "9", "--device", "cpu"], &["--k"]);
    fails(tmp.path(), &["lyapunov", "--input", "sideways", "--device", "cpu"], &["sideways"]);
}

/// Gated families train from the command line and their checkpoints name their tensors.
#[test]
fn lstm_and_gru_train_and_evaluate() {
    let tmp = TempDir::new("gated");
    for model in ["lstm", "gru"] {
        let dir = tmp.join(model);
        train(tmp.path(), &dir, &["--model", model, "--task", "copy", "--steps", "20"]);
        let out = ok(tmp.path(), &["eval", "--run", dir.to_str().unwrap(), "--json", "--device", "cpu"]);
        let v = json_stdout(&["eval"], &out);
        assert!(num(&v, "loss").is_finite());
        let bytes = std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
        let (header, _) = safetensors_header(&bytes);
        assert_eq!(header["__metadata__"]["model"], model);
        let rows = if model == "lstm" { 32 } else { 24 };
        assert_eq!(header["w_rec"]["shape"], serde_json::json!([rows, 8]), "{model}: {}", header["w_rec"]);
    }
    // the study and flossing are Elman-only, and say so
    fails(tmp.path(), &["train", "--model", "lstm", "--task", "filter", "--device", "cpu", "--out", tmp.join("f").to_str().unwrap()], &["filter", "rnn"]);
    fails(tmp.path(), &["train", "--model", "gru", "--floss-before", "5", "--device", "cpu", "--out", tmp.join("g").to_str().unwrap()], &["flossing", "gru"]);
}

/// Output into a pipe whose reader has gone (`longmem ... | head`) ends the
/// process quietly, not with a panic.
#[cfg(unix)]
#[test]
fn closed_stdout_is_no_panic() {
    use std::process::Stdio;
    let tmp = TempDir::new("pipe");
    let mut child = Command::new(BIN)
        .args(["lyapunov", "--hidden", "4", "--steps", "2000", "--k", "4", "--device", "cpu", "--json", "--out", tmp.join("l").to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "panicked on a closed stdout: {stderr}");
    assert_ne!(out.status.code(), Some(101));
}

/// `--model urnn` trains with the reference code's recipe (RMSprop 1e-3,
/// decay 0.9, no clipping) unless told otherwise, and refuses sizes that
/// are not powers of two.
#[test]
fn urnn_trains_with_its_recipe_and_checks_its_size() {
    let tmp = TempDir::new("urnn");
    let dir = tmp.join("u");
    train(tmp.path(), &dir, &["--model", "urnn", "--task", "copy", "--steps", "20"]);
    let cfg = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    for line in ["optimizer = \"rmsprop\"", "lr = 0.001", "clip = 0.0", "rms_decay = 0.9"] {
        assert!(cfg.lines().any(|l| l.trim() == line), "config.toml should hold {line}:\n{cfg}");
    }
    let out = ok(tmp.path(), &["eval", "--run", dir.to_str().unwrap(), "--json", "--device", "cpu"]);
    assert!(num(&json_stdout(&["eval"], &out), "loss").is_finite());
    let bytes = std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
    let (header, _) = safetensors_header(&bytes);
    assert_eq!(header["theta"]["shape"], serde_json::json!([3, 8]));
    assert_eq!(header["h0"]["shape"], serde_json::json!([16]));
    // flags still win over the recipe
    let d2 = tmp.join("u2");
    train(tmp.path(), &d2, &["--model", "urnn", "--steps", "5", "--optimizer", "adam", "--lr", "0.01"]);
    let cfg = std::fs::read_to_string(d2.join("config.toml")).unwrap();
    assert!(cfg.contains("optimizer = \"adam\""), "{cfg}");
    fails(tmp.path(), &["train", "--model", "urnn", "--hidden", "12", "--device", "cpu", "--out", tmp.join("bad").to_str().unwrap()], &["power of two", "12"]);
    let out = ok(tmp.path(), &["lyapunov", "--model", "urnn", "--hidden", "4", "--k", "8", "--steps", "50", "--device", "cpu", "--json", "--out", tmp.join("ly").to_str().unwrap()]);
    let v = json_stdout(&["lyapunov"], &out);
    assert_eq!(v["exponents"].as_array().unwrap().len(), 8);
}

/// A language model from the command line: text file, char level, eval
/// with perplexity and bits per char, sampling; and the errors users hit.
#[test]
fn text_language_model_trains_evaluates_and_samples() {
    let tmp = TempDir::new("lm");
    let text = "to be or not to be that is the question\n".repeat(60);
    std::fs::write(tmp.join("t.txt"), text).unwrap();
    let dir = tmp.join("run");
    let d = dir.to_str().unwrap();
    ok(
        tmp.path(),
        &["train", "--task", "text", "--level", "char", "--data", "t.txt", "--model", "gru", "--hidden", "12", "--batch", "4", "--bptt", "10", "--epochs", "2", "--device", "cpu", "--out", d, "--quiet"],
    );
    for f in ["config.toml", "metrics.jsonl", "checkpoint.safetensors", "vocab.txt", "lm_state.json", "loss.svg"] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    let cfg = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(cfg.contains("optimizer = \"sgd\"") && cfg.contains("bptt = 10"), "{cfg}");
    let out = ok(tmp.path(), &["eval", "--run", d, "--json"]);
    let v = json_stdout(&["eval"], &out);
    let ppl = v["perplexity"]["valid"].as_f64().unwrap();
    let bpc = v["bits_per_char"]["valid"].as_f64().unwrap();
    assert!((bpc - ppl.log2()).abs() < 1e-9, "bpc {bpc} vs log2 ppl {}", ppl.log2());
    assert!(ppl < v["vocab"].as_f64().unwrap(), "perplexity {ppl} not below the vocabulary size");
    let out = ok(tmp.path(), &["sample", "--run", d, "--length", "25", "--prime", "to be", "--temperature", "0"]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.starts_with("to be") && s.trim_end_matches('\n').chars().count() >= 5 + 20, "sample: {s:?}");
    fails(tmp.path(), &["sample", "--run", d, "--prime", "Z"], &["vocabulary"]);
    fails(tmp.path(), &["train", "--task", "ptb", "--device", "cpu", "--out", tmp.join("p").to_str().unwrap()], &["--data"]);
    fails(tmp.path(), &["train", "--task", "text", "--data", "missing.txt", "--device", "cpu", "--out", tmp.join("q").to_str().unwrap()], &["missing.txt"]);
    fails(tmp.path(), &["train", "--task", "ptb", "--level", "char", "--data", ".", "--device", "cpu", "--out", tmp.join("r").to_str().unwrap()], &["word level"]);
}

#[test]
fn lyapunov_spectrum_of_a_fresh_lstm() {
    let tmp = TempDir::new("lyap-lstm");
    let out = ok(tmp.path(), &["lyapunov", "--model", "lstm", "--hidden", "6", "--steps", "100", "--transient", "20", "--tangent-transient", "20", "--trajectories", "1", "--json", "--out", "ly"]);
    let v = json_stdout(&["lyapunov"], &out);
    assert_eq!(v["k"].as_u64(), Some(12), "k defaults to the state width 2H: {v}");
    assert!(tmp.join("ly/lyapunov.json").exists());
}
