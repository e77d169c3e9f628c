//! Gradient flossing sweep (Engelken 2023): delayed copy trained plainly,
//! with flossing before training, and with flossing before and during
//! training, over several delays and seeds. Writes sweep.md (a table of
//! final accuracy per delay, and how many seeds learned and solved the task) and sweep.svg.
//!
//! `cargo run --release --example floss_sweep -- [OUT_DIR] [--delays 10,20,30] [--seeds 3]
//!  [--hidden 32] [--seq-len 60] [--steps 1500] [--floss-before 200] [--floss-k 16] [--floss-len 30]
//!  [--lr 1e-3] [--clip 1] [--weight-decay 0] [--input-scale 1] [--floss-optimizer shared|separate] [--device cpu]
//!  [--floss-at S1,S2] [--floss-burst n] [--jobs 2]`
//! Bursts default to floss-before/4 updates before steps/5 and 2·steps/5.
//! With the separate flossing optimizer (the default) flossing before
//! training is done once per seed (`floss-seed*/`, a flossing-only run) and
//! every flossed run starts from it (`--init-from`), which trains exactly as
//! separate runs with `--floss-before` would; `--jobs` runs that many
//! trainings at once, and a restarted sweep keeps the runs it finished.
//! The defaults are a small CPU-sized version of the paper's setup (tanh RNN
//! N = 80, T = 300, batch 16, 500 flossing steps with k = 75); pass
//! `--hidden 80 --seq-len 300 --floss-k 75 --floss-before 500` for that one.

use anyhow::{bail, Result};
use longmem::config::TrainConfig;
use longmem::tasks::TaskKind;
use longmem::train::metrics;
use longmem::train::optim::OptimKind;
use longmem::train::run::{train, RunOptions, CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE};
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

struct Opts {
    out: PathBuf,
    delays: Vec<usize>,
    seeds: u64,
    hidden: usize,
    seq_len: usize,
    steps: u64,
    floss_before: u64,
    floss_k: usize,
    floss_len: usize,
    lr: f64,
    clip: f64,
    weight_decay: f64,
    input_scale: f64,
    floss_separate_optimizer: bool,
    device: String,
    floss_at: Option<Vec<u64>>,
    floss_burst: Option<u64>,
    jobs: usize,
}

fn parse() -> Result<Opts> {
    let mut o = Opts {
        out: PathBuf::from("runs/floss-sweep"),
        delays: vec![10, 15, 20, 25, 30],
        seeds: 3,
        hidden: 32,
        seq_len: 60,
        steps: 1500,
        floss_before: 200,
        floss_k: 16,
        floss_len: 30,
        lr: 1e-3,
        clip: 1.0,
        weight_decay: 0.0,
        input_scale: 1.0,
        floss_separate_optimizer: true,
        device: "cpu".into(),
        floss_at: None,
        floss_burst: None,
        jobs: 1,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let val = |i: usize| args.get(i + 1).cloned().ok_or_else(|| anyhow::anyhow!("{} needs a value", args[i]));
        match args[i].as_str() {
            "--delays" => o.delays = val(i)?.split(',').map(|s| s.parse()).collect::<Result<_, _>>()?,
            "--seeds" => o.seeds = val(i)?.parse()?,
            "--hidden" => o.hidden = val(i)?.parse()?,
            "--seq-len" => o.seq_len = val(i)?.parse()?,
            "--steps" => o.steps = val(i)?.parse()?,
            "--floss-before" => o.floss_before = val(i)?.parse()?,
            "--floss-k" => o.floss_k = val(i)?.parse()?,
            "--floss-len" => o.floss_len = val(i)?.parse()?,
            "--lr" => o.lr = val(i)?.parse()?,
            "--clip" => o.clip = val(i)?.parse()?,
            "--weight-decay" => o.weight_decay = val(i)?.parse()?,
            "--input-scale" => o.input_scale = val(i)?.parse()?,
            "--floss-optimizer" => {
                o.floss_separate_optimizer = match val(i)?.as_str() {
                    "shared" => false,
                    "separate" => true,
                    v => bail!("--floss-optimizer must be shared or separate, got '{v}'"),
                }
            }
            "--device" => o.device = val(i)?,
            "--floss-at" => o.floss_at = Some(val(i)?.split(',').map(|s| s.parse()).collect::<Result<_, _>>()?),
            "--floss-burst" => o.floss_burst = Some(val(i)?.parse()?),
            "--jobs" => o.jobs = val(i)?.parse()?,
            s if !s.starts_with("--") => {
                o.out = PathBuf::from(s);
                i += 1;
                continue;
            }
            other => bail!("unknown option {other}"),
        }
        i += 2;
    }
    Ok(o)
}

const MODES: [&str; 3] = ["plain", "floss before", "floss before + during"];

enum Job {
    /// the flossing-only run of a seed
    Floss(u64),
    /// (delay index, delay, seed, mode)
    Train(usize, usize, u64, usize),
}

/// The run in `dir` finished with exactly this config: a restarted sweep keeps it.
fn finished(cfg: &TrainConfig, dir: &Path) -> bool {
    let mut c = cfg.clone();
    c.resolve();
    let same = std::fs::read_to_string(dir.join(CONFIG_FILE)).is_ok_and(|t| t == c.to_toml());
    let last = metrics::read(&dir.join(METRICS_FILE)).ok().and_then(|l| l.last().map(|l| l.step));
    same && dir.join(CHECKPOINT_FILE).exists() && last == Some(cfg.steps)
}

fn run_or_keep(cfg: &TrainConfig, dir: &Path) -> Result<()> {
    if finished(cfg, dir) {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(dir);
    train(cfg, &RunOptions { out: dir.to_path_buf(), resume: false, verbose: false })?;
    Ok(())
}

/// Run `f` on every item on `n` threads; the first error wins.
fn parallel<T: Sync>(n: usize, items: &[T], f: &(impl Fn(&T) -> Result<()> + Sync)) -> Result<()> {
    let next = AtomicUsize::new(0);
    let err = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..n.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= items.len() || err.lock().unwrap().is_some() {
                    break;
                }
                if let Err(e) = f(&items[i]) {
                    *err.lock().unwrap() = Some(e);
                }
            });
        }
    });
    match err.into_inner().unwrap() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn main() -> Result<()> {
    let o = parse()?;
    std::fs::create_dir_all(&o.out)?;
    let base = |d: usize, seed: u64| TrainConfig {
        task: TaskKind::DelayedCopy,
        seq_len: o.seq_len,
        delay: d,
        hidden: o.hidden,
        batch: 16,
        steps: o.steps,
        optimizer: OptimKind::Adam,
        lr: o.lr,
        clip: o.clip,
        weight_decay: o.weight_decay,
        input_scale: o.input_scale,
        log_every: 100,
        checkpoint_every: o.steps,
        seed,
        device: o.device.clone(),
        floss_k: o.floss_k,
        floss_len: o.floss_len,
        floss_separate_optimizer: o.floss_separate_optimizer,
        ..Default::default()
    };
    let bursts = o.floss_at.clone().unwrap_or_else(|| vec![o.steps / 5, 2 * o.steps / 5]);
    let burst = o.floss_burst.unwrap_or(o.floss_before / 4);
    // flossing before training sees only the task's inputs, never the
    // delay: with its own optimizer it is done once per seed, and every
    // flossed run starts from it (exactly as one run with --floss-before)
    let shared_floss = o.floss_separate_optimizer && o.floss_before > 0;
    let floss_dir = |seed: u64| o.out.join(format!("floss-seed{seed}"));
    // results[mode][delay] = final accuracies over seeds
    let results = Mutex::new(vec![vec![Vec::new(); o.delays.len()]; MODES.len()]);
    let job = |j: &Job| -> Result<()> {
        let (di, d, seed, mi) = match *j {
            Job::Floss(seed) => {
                let mut cfg = base(o.delays[0], seed);
                (cfg.steps, cfg.floss_before) = (0, o.floss_before);
                run_or_keep(&cfg, &floss_dir(seed))?;
                println!("seed {seed}: {} flossing updates done", o.floss_before);
                return Ok(());
            }
            Job::Train(di, d, seed, mi) => (di, d, seed, mi),
        };
        let mut cfg = base(d, seed);
        if mi >= 1 {
            if shared_floss {
                cfg.init_from = Some(floss_dir(seed).display().to_string());
            } else {
                cfg.floss_before = o.floss_before;
            }
        }
        if mi == 2 {
            cfg.floss_at = bursts.clone();
            cfg.floss_burst = burst;
        }
        let dir = o.out.join(format!("d{d}-seed{seed}-{}", MODES[mi].replace([' ', '+'], "")));
        run_or_keep(&cfg, &dir)?;
        let lines = metrics::read(&dir.join(METRICS_FILE))?;
        let acc: Vec<f64> = lines.iter().filter(|l| l.is_training()).rev().take(3).filter_map(|l| l.accuracy).collect();
        let a = acc.iter().sum::<f64>() / acc.len().max(1) as f64;
        println!("d = {d:>3}  seed {seed}  {:<22} final accuracy {a:.3}", MODES[mi]);
        results.lock().unwrap()[mi][di].push((seed, a));
        Ok(())
    };
    // first the flossing-only runs beside the plain ones, then the runs that
    // start from them, the longest (with bursts) first
    let (mut first, mut then) = (Vec::new(), Vec::new());
    if shared_floss {
        first.extend((0..o.seeds).map(Job::Floss));
    }
    for mi in (0..MODES.len()).rev() {
        for (di, &d) in o.delays.iter().enumerate() {
            for seed in 0..o.seeds {
                let j = Job::Train(di, d, seed, mi);
                if mi == 0 || !shared_floss {
                    first.push(j);
                } else {
                    then.push(j);
                }
            }
        }
    }
    parallel(o.jobs, &first, &job)?;
    parallel(o.jobs, &then, &job)?;
    let results: Vec<Vec<Vec<f64>>> = results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|per_delay| {
            per_delay
                .into_iter()
                .map(|mut v| {
                    v.sort_by_key(|&(s, _)| s);
                    v.into_iter().map(|(_, a)| a).collect()
                })
                .collect()
        })
        .collect();
    let at = bursts.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ");
    let mut md = String::new();
    writeln!(md, "Delayed copy, T = {}, tanh RNN N = {}, {} steps, input weights × {}, Adam lr {}, weight decay {}, clip {}; flossing k = {}, Tp = {}, {} optimizer, {} updates before training; bursts of {burst} before steps {at}. Final accuracy (mean of the last three logs) averaged over {} seeds, and how many seeds learned the task past chance (final accuracy above {LEARNED}) and solved it (above {SOLVED}); chance is 0.5.\n", o.seq_len, o.hidden, o.steps, o.input_scale, o.lr, o.weight_decay, o.clip, o.floss_k, o.floss_len, if o.floss_separate_optimizer { "its own" } else { "the training" }, o.floss_before, o.seeds)?;
    writeln!(md, "| delay | {} |", MODES.iter().map(|m| format!("{m}: accuracy (learned, solved)")).collect::<Vec<_>>().join(" | "))?;
    writeln!(md, "|---|{}", "---|".repeat(MODES.len()))?;
    for (di, d) in o.delays.iter().enumerate() {
        let cells: Vec<String> = (0..MODES.len())
            .map(|mi| {
                let v = &results[mi][di];
                let mean = v.iter().sum::<f64>() / v.len() as f64;
                let learned = v.iter().filter(|&&a| a > LEARNED).count();
                let solved = v.iter().filter(|&&a| a > SOLVED).count();
                format!("{mean:.3} ({learned}/{n}, {solved}/{n})", n = v.len())
            })
            .collect();
        writeln!(md, "| {d} | {} |", cells.join(" | "))?;
    }
    writeln!(md, "\nPer seed (seeds 0, 1, ...):\n")?;
    for (di, d) in o.delays.iter().enumerate() {
        let cells: Vec<String> = (0..MODES.len()).map(|mi| results[mi][di].iter().map(|a| format!("{a:.3}")).collect::<Vec<_>>().join(", ")).collect();
        writeln!(md, "- d = {d}: {}", MODES.iter().zip(&cells).map(|(m, c)| format!("{m} {c}")).collect::<Vec<_>>().join("; "))?;
    }
    std::fs::write(o.out.join("sweep.md"), &md)?;
    print!("\n{md}");
    plot(&o, &results)?;
    println!("wrote {} and {}", o.out.join("sweep.md").display(), o.out.join("sweep.svg").display());
    Ok(())
}

/// A seed above LEARNED has learned more than chance (0.5; untrained runs
/// end within ±0.02 of it at batch 16); one above SOLVED has solved the task.
const LEARNED: f64 = 0.6;
const SOLVED: f64 = 0.9;

fn plot(o: &Opts, results: &[Vec<Vec<f64>>]) -> Result<()> {
    let path = o.out.join("sweep.svg");
    let root = SVGBackend::new(&path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (lo, hi) = (*o.delays.iter().min().unwrap() as f64, *o.delays.iter().max().unwrap() as f64);
    let mut chart = ChartBuilder::on(&root)
        .caption("delayed copy: final accuracy against delay", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((lo - 1.0)..(hi + 1.0), 0.4..1.02)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart.configure_mesh().x_desc("delay d").y_desc("final accuracy").draw().map_err(|e| anyhow::anyhow!("{e}"))?;
    for (mi, colour) in [(0, RED), (1, BLUE), (2, GREEN)] {
        let pts: Vec<(f64, f64)> = o.delays.iter().zip(&results[mi]).map(|(&d, v)| (d as f64, v.iter().sum::<f64>() / v.len() as f64)).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .label(MODES[mi])
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, colour.filled()))).map_err(|e| anyhow::anyhow!("{e}"))?;
        // each seed as a small hollow mark, nudged sideways per mode
        let nudge = (mi as f64 - 1.0) * (hi - lo).max(1.0) / 150.0;
        let seeds = o.delays.iter().zip(&results[mi]).flat_map(|(&d, v)| v.iter().map(move |&a| (d as f64 + nudge, a)));
        chart.draw_series(seeds.map(|p| Circle::new(p, 2, colour.stroke_width(1)))).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw().map_err(|e| anyhow::anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
