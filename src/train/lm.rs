//! Language modelling: word-level Penn Treebank or any text file at word or
//! character level, cut into B parallel streams and trained by truncated
//! BPTT with the state carried from segment to segment, full softmax over
//! the vocabulary. Mikolov's schedule: after every epoch the validation
//! perplexity decides: better → keep (the checkpoint is the best model);
//! not better → roll back to the best model and divide the learning rate;
//! stop after `max_divides` divisions or `epochs` epochs.
//!
//! The loss of a segment is summed over its time steps and averaged over
//! the streams (so `lr` means what it does in the usual PTB recipes);
//! metrics and perplexities are per token.

use super::backend::Backend;
use super::checkpoint::{write_atomic, Checkpoint};
use super::metrics::{self, MetricsLine};
use super::run::{backend, RunOptions, RunSummary, CHECKPOINT_FILE, CONFIG_FILE, LOSS_PLOT, METRICS_FILE};
use crate::config::TrainConfig;
use crate::data::text::{Corpus, Level, Segment, Streams, Vocab};
use crate::device::{resolve, Engine};
use crate::models::{Dims, Model};
use crate::rng::Rng;
use crate::tasks::{Batch, TaskKind, Target};
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

pub const VOCAB_FILE: &str = "vocab.txt";
pub const LM_STATE_FILE: &str = "lm_state.json";

/// Loads the run's corpus as the config says.
pub fn corpus(cfg: &TrainConfig) -> Result<Corpus> {
    let data = cfg.data.as_deref().with_context(|| match cfg.task {
        TaskKind::Ptb => "--task ptb needs --data DIR, the folder holding ptb.train.txt, ptb.valid.txt and ptb.test.txt",
        _ => "--task text needs --data FILE, a UTF-8 text file",
    })?;
    match cfg.task {
        TaskKind::Ptb => Corpus::ptb(Path::new(data)),
        TaskKind::Text => Corpus::text(Path::new(data), Level::parse(&cfg.level)?, (0.9, 0.05, 0.05)),
        other => bail!("{other:?} is not a language-modelling task"),
    }
}

pub fn lm_model(cfg: &TrainConfig, vocab: usize) -> Result<Model> {
    Model::build(cfg.model, Dims { input: vocab, hidden: cfg.hidden, output: vocab }, &cfg.model_options())
}

/// How a language model's weights start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LmInit {
    /// the families' own scales, with token embeddings N(0, (0.5·scale)²)
    #[default]
    Scaled,
    /// every weight N(0, (0.05·scale)²) and the readout zero, as the SCRN
    /// reference code starts all its PTB models; biases (and SCRN's α) as
    /// the family sets them. Small embeddings keep rare words near zero,
    /// which narrows the gap between train and validation perplexity.
    Reference,
}

/// The reference code's weight scale.
pub const REFERENCE_INIT_SD: f64 = 0.05;

impl LmInit {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "scaled" => LmInit::Scaled,
            "reference" => LmInit::Reference,
            other => bail!("unknown --lm-init '{other}': expected scaled or reference"),
        })
    }
}

/// Initial parameters for token inputs. `Scaled`: the families scale w_in
/// for dense inputs of unit variance (N(0, 1/I)), but a one-hot input has
/// fan-in 1, so its column (the token's embedding) is drawn N(0, (0.5·scale)²)
/// instead of being nearly zero for a large vocabulary. `Reference`: see [`LmInit`].
pub fn init_params(model: &Model, cfg: &TrainConfig) -> Vec<f32> {
    let mut rng = Rng::stream(cfg.seed, super::run::STREAM_INIT);
    let mut p = model.init(&cfg.init_config(), &mut rng);
    let layout = model.layout();
    match cfg.lm_init {
        LmInit::Scaled => {
            let sd = 0.5 * cfg.init_scale;
            if let Ok(w) = layout.get("w_in") {
                for v in &mut p[w.range()] {
                    *v = (rng.normal() * sd) as f32;
                }
            }
        }
        LmInit::Reference => {
            let sd = REFERENCE_INIT_SD * cfg.init_scale;
            for name in ["w_in", "w_rec", "w_ctx"] {
                if let Ok(w) = layout.get(name) {
                    for v in &mut p[w.range()] {
                        *v = (rng.normal() * sd) as f32;
                    }
                }
            }
            if let Ok(w) = layout.get("w_out") {
                p[w.range()].iter_mut().for_each(|v| *v = 0.0);
            }
        }
    }
    cfg.scale_input_weights(model, &mut p);
    p
}

/// A segment as a batch of token inputs with next-token targets; its
/// context steps (the overlap with the window before) are masked out.
pub fn segment_batch(seg: &Segment) -> Batch {
    let rows = seg.t_len * seg.batch;
    let mut mask = vec![1.0; rows];
    mask[..seg.context * seg.batch].fill(0.0);
    Batch {
        x: ndarray::Array3::zeros((seg.t_len, seg.batch, 0)),
        target: Target::Classes(seg.targets.clone()),
        mask,
        metric_mask: vec![0.0; rows],
        loss_norm: Some(1.0 / seg.batch as f64),
        tokens: Some(seg.inputs.clone()),
        carry_state: seg.carry_in,
        feedback: None,
        carry_at: Some(seg.carry_at),
    }
}

/// Mean negative log-likelihood per token (nats) of a split, read as B
/// streams with the state carried across segments.
pub fn split_nll(be: &mut dyn Backend, tokens: &[u32], batch: usize, bptt: usize) -> Result<f64> {
    let streams = Streams::new(tokens, batch)?;
    let (mut total, mut n) = (0.0, 0usize);
    for (i, seg) in streams.segments(bptt).enumerate() {
        let (loss, _) = be.evaluate(&segment_batch(&seg))?;
        ensure!(loss.is_finite(), "the model's loss is not finite on segment {i}");
        total += loss as f64 * seg.batch as f64;
        n += seg.t_len * seg.batch;
    }
    Ok(total / n.max(1) as f64)
}

/// What the schedule needs to resume after a finished epoch.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LmState {
    pub epoch: u64,
    pub step: u64,
    pub lr_scale: f64,
    pub best_valid_ppl: f64,
    pub divides: u64,
    pub done: bool,
}

fn save_state(dir: &Path, s: &LmState) -> Result<()> {
    write_atomic(&dir.join(LM_STATE_FILE), serde_json::to_string_pretty(s)?.as_bytes())
}

pub fn train(cfg: &TrainConfig, opts: &RunOptions) -> Result<RunSummary> {
    cfg.validate()?;
    let engine = resolve(&cfg.device, cfg.adapter.as_deref())?;
    train_on(cfg, opts, &engine)
}

pub fn train_on(cfg: &TrainConfig, opts: &RunOptions, engine: &Engine) -> Result<RunSummary> {
    let mut cfg = cfg.clone();
    cfg.resolve();
    let cfg = &cfg;
    cfg.validate()?;
    let dir = &opts.out;
    let say = |msg: String| {
        if opts.verbose {
            eprintln!("{msg}");
        }
    };
    let mut corpus = corpus(cfg)?;
    if let Some(n) = cfg.train_tokens {
        ensure!(n >= 2 * cfg.batch, "--train-tokens {n} leaves fewer than 2 tokens per stream for --batch {}", cfg.batch);
        corpus.train.truncate(n);
    }
    let v = corpus.vocab.len();
    let model = lm_model(cfg, v)?;
    let fallback = if cfg.device == "auto" && matches!(engine, Engine::Cpu) { " (no Vulkan, Metal or DX12 adapter found)" } else { "" };
    say(format!("device: {}{fallback}", engine.describe_for(&model)));
    say(format!(
        "corpus: {} tokens of vocabulary {v}: train {}, valid {}, test {}",
        corpus.level.name(),
        corpus.train.len(),
        corpus.valid.len(),
        corpus.test.len()
    ));
    let ck_path = dir.join(CHECKPOINT_FILE);
    let metrics_path = dir.join(METRICS_FILE);

    let (params, mv, mut st) = if opts.resume {
        let st: LmState = serde_json::from_slice(&std::fs::read(dir.join(LM_STATE_FILE)).with_context(|| format!("{} has no {LM_STATE_FILE}", dir.display()))?)
            .with_context(|| format!("{} is corrupt", dir.join(LM_STATE_FILE).display()))?;
        let saved = Vocab::load(&dir.join(VOCAB_FILE))?;
        ensure!(saved.len() == v, "the data's vocabulary ({v}) is not the run's ({})", saved.len());
        if st.done || st.epoch >= cfg.epochs {
            bail!("{} finished its schedule at epoch {}; pass a larger --epochs to train further", dir.display(), st.epoch);
        }
        let ck = Checkpoint::load(&model, &ck_path)?;
        metrics::truncate_after(&metrics_path, st.step)?;
        say(format!("resuming {} after epoch {} (best valid perplexity {:.2})", dir.display(), st.epoch, st.best_valid_ppl));
        (ck.params, Some((ck.optim_m, ck.optim_v)), st)
    } else {
        if ck_path.exists() || metrics_path.exists() {
            bail!("{} already holds a run; pass --resume {} to continue it, or choose another --out", dir.display(), dir.display());
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create run directory {}", dir.display()))?;
        corpus.vocab.save(&dir.join(VOCAB_FILE))?;
        let p = init_params(&model, cfg);
        let st = LmState { epoch: 0, step: 0, lr_scale: 1.0, best_valid_ppl: f64::INFINITY, divides: 0, done: false };
        (p, None, st)
    };
    write_atomic(&dir.join(CONFIG_FILE), cfg.to_toml().as_bytes())?;
    let mut be = backend(engine, model.clone(), params, cfg)?;
    if let Some((m, v_)) = &mv {
        let p = be.params()?;
        be.load(&p, m, v_)?;
    }
    let save = |be: &dyn Backend, step: u64| -> Result<()> {
        let (m, v_) = be.optim_state()?;
        let ck = Checkpoint {
            model: model.kind(),
            dims: model.dims(),
            bias: model.has_bias(),
            step,
            params: be.params()?,
            optim_m: m,
            optim_v: v_,
            floss_m: Vec::new(),
            floss_v: Vec::new(),
            floss_updates: None,
            data_rng: [0; 4],
            log_acc: (0.0, 0),
        };
        ck.save(&model, &ck_path)
    };
    if !opts.resume {
        let nll = split_nll(be.as_mut(), &corpus.valid, cfg.batch, cfg.bptt)?;
        say(format!("epoch 0: valid perplexity {:.2} (an untrained model; uniform would be {v})", nll.exp()));
        st.best_valid_ppl = nll.exp();
        save(be.as_ref(), 0)?;
        save_state(dir, &st)?;
        metrics::append(&metrics_path, &valid_line(0, 0, nll, cfg.lr, 0.0))?;
    }

    let optim = cfg.optim();
    let train_streams = Streams::new(&corpus.train, cfg.batch)?;
    let stride = cfg.bptt_stride.unwrap_or(cfg.bptt);
    let per_epoch = train_streams.num_windows(stride) as u64;
    let started = Instant::now();
    let bar = (opts.verbose && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
        let b = indicatif::ProgressBar::new(per_epoch);
        b.set_style(indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} segments  {msg}  [{elapsed_precise} < {eta_precise}]").expect("template"));
        b
    });
    while st.epoch < cfg.epochs && !st.done {
        let epoch = st.epoch + 1;
        let lr = cfg.lr * st.lr_scale;
        let (mut acc, mut acc_n, mut norm_acc) = (0.0, 0u64, 0.0);
        let mut last_log = Instant::now();
        if let Some(b) = &bar {
            b.reset();
        }
        for seg in train_streams.windows(cfg.bptt, stride) {
            st.step += 1;
            let h = optim.hyper(lr, st.step);
            let out = be.train_step(&segment_batch(&seg), &h)?;
            if !out.loss.is_finite() {
                bail!("the training loss became non-finite at step {} (epoch {epoch}); lower --lr or --clip", st.step);
            }
            acc += out.loss as f64 / seg.scored() as f64;
            norm_acc += out.grad_norm as f64;
            acc_n += 1;
            if st.step.is_multiple_of(cfg.log_every) {
                let secs = last_log.elapsed().as_secs_f64();
                let line = MetricsLine {
                    step: st.step,
                    loss: acc / acc_n as f64,
                    baseline_loss: Some((v as f64).ln()),
                    accuracy: None,
                    grad_norm: norm_acc / acc_n as f64,
                    lr,
                    elapsed_s: started.elapsed().as_secs_f64(),
                    steps_per_s: acc_n as f64 / secs.max(1e-9),
                    phase: None,
                    floss_updates: None,
                    lyapunov: None,
                    epoch: Some(epoch),
                    perplexity: Some((acc / acc_n as f64).exp()),
                };
                metrics::append(&metrics_path, &line)?;
                match &bar {
                    Some(b) => b.set_message(format!("epoch {epoch}  train ppl {:.1}", line.loss.exp())),
                    None => say(format!("epoch {epoch} step {}: train perplexity {:.2}", st.step, line.loss.exp())),
                }
                (acc, acc_n, norm_acc) = (0.0, 0, 0.0);
                last_log = Instant::now();
            }
            if let Some(b) = &bar {
                b.inc(1);
            }
        }
        let nll = split_nll(be.as_mut(), &corpus.valid, cfg.batch, cfg.bptt)?;
        let ppl = nll.exp();
        metrics::append(&metrics_path, &valid_line(st.step, epoch, nll, lr, started.elapsed().as_secs_f64()))?;
        st.epoch = epoch;
        if ppl * cfg.min_improvement < st.best_valid_ppl {
            say(format!("epoch {epoch}: valid perplexity {ppl:.2} (best so far; lr {lr:.4})"));
            st.best_valid_ppl = ppl;
            save(be.as_ref(), st.step)?;
        } else {
            st.divides += 1;
            st.lr_scale /= cfg.lr_divide;
            // roll back to the best model (and its optimizer state)
            let ck = Checkpoint::load(&model, &ck_path)?;
            be.load(&ck.params, &ck.optim_m, &ck.optim_v)?;
            say(format!(
                "epoch {epoch}: valid perplexity {ppl:.2}, not better than {:.2}: back to the best model, lr / {} = {:.4}",
                st.best_valid_ppl,
                cfg.lr_divide,
                cfg.lr * st.lr_scale
            ));
            if st.divides > cfg.max_divides {
                say(format!("stopping: the learning rate was divided {} times", cfg.max_divides));
                st.done = true;
            }
        }
        save_state(dir, &st)?;
        plot_losses(dir)?;
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    // the checkpoint holds the best model: report its test perplexity
    let ck = Checkpoint::load(&model, &ck_path)?;
    let (m, v_) = (ck.optim_m.clone(), ck.optim_v.clone());
    be.load(&ck.params, &m, &v_)?;
    let test = split_nll(be.as_mut(), &corpus.test, cfg.batch, cfg.bptt)?;
    say(format!("done: {} best valid perplexity {:.2}, test perplexity {:.2}", dir.display(), st.best_valid_ppl, test.exp()));
    Ok(RunSummary { steps: st.step, final_loss: st.best_valid_ppl.ln(), baseline_loss: (v as f64).ln(), device: engine.describe() })
}

fn valid_line(step: u64, epoch: u64, nll: f64, lr: f64, elapsed: f64) -> MetricsLine {
    MetricsLine {
        step,
        loss: nll,
        baseline_loss: None,
        accuracy: None,
        grad_norm: 0.0,
        lr,
        elapsed_s: elapsed,
        steps_per_s: 0.0,
        phase: Some("valid".into()),
        floss_updates: None,
        lyapunov: None,
        epoch: Some(epoch),
        perplexity: Some(nll.exp()),
    }
}

fn plot_losses(dir: &Path) -> Result<()> {
    let lines = metrics::read(&dir.join(METRICS_FILE))?;
    let train: Vec<(f64, f64)> = lines.iter().filter(|l| l.is_training()).map(|l| (l.step as f64, l.loss)).collect();
    let valid: Vec<(f64, f64)> = lines.iter().filter(|l| l.phase.as_deref() == Some("valid")).map(|l| (l.step as f64, l.loss)).collect();
    crate::plot::lm_svg(&dir.join(LOSS_PLOT), &train, &valid)
}

/// Validation and test perplexity of a run's (best) checkpoint.
#[derive(Clone, Debug, Serialize)]
pub struct LmEval {
    pub perplexity: SplitFigures,
    pub nll: SplitFigures,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bits_per_char: Option<SplitFigures>,
    pub tokens: SplitCounts,
    pub level: String,
    pub vocab: usize,
    pub step: u64,
    pub device: String,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct SplitFigures {
    pub valid: f64,
    pub test: f64,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct SplitCounts {
    pub valid: usize,
    pub test: usize,
}

pub fn evaluate(dir: &Path, cfg: &TrainConfig, engine: &Engine) -> Result<LmEval> {
    let corpus = corpus(cfg)?;
    let saved = Vocab::load(&dir.join(VOCAB_FILE))?;
    ensure!(saved.len() == corpus.vocab.len(), "the data's vocabulary ({}) is not the run's ({})", corpus.vocab.len(), saved.len());
    let model = lm_model(cfg, corpus.vocab.len())?;
    let ck = Checkpoint::load(&model, &dir.join(CHECKPOINT_FILE))?;
    let mut be = backend(engine, model, ck.params, cfg)?;
    let valid = split_nll(be.as_mut(), &corpus.valid, cfg.batch, cfg.bptt)?;
    let test = split_nll(be.as_mut(), &corpus.test, cfg.batch, cfg.bptt)?;
    let ln2 = std::f64::consts::LN_2;
    Ok(LmEval {
        perplexity: SplitFigures { valid: valid.exp(), test: test.exp() },
        nll: SplitFigures { valid, test },
        bits_per_char: (corpus.level == Level::Char).then_some(SplitFigures { valid: valid / ln2, test: test / ln2 }),
        tokens: SplitCounts { valid: corpus.valid.len(), test: corpus.test.len() },
        level: corpus.level.name().to_string(),
        vocab: corpus.vocab.len(),
        step: ck.step,
        device: engine.describe(),
    })
}

/// Generate `len` tokens from a run's model on the CPU, primed with `prime`.
pub fn sample(dir: &Path, cfg: &TrainConfig, prime: &str, len: usize, temperature: f64, seed: u64) -> Result<String> {
    ensure!(temperature >= 0.0 && temperature.is_finite(), "--temperature must be finite and ≥ 0, got {temperature}");
    let vocab = Vocab::load(&dir.join(VOCAB_FILE))?;
    let level = if cfg.task == TaskKind::Ptb { Level::Word } else { Level::parse(&cfg.level)? };
    let model = lm_model(cfg, vocab.len())?;
    let ck = Checkpoint::load(&model, &dir.join(CHECKPOINT_FILE))?;
    let p = ck.params;
    let mut ids: Vec<u32> = match level {
        Level::Word => prime.split_whitespace().map(|w| vocab.id(w).or_else(|| vocab.id("<unk>")).with_context(|| format!("'{w}' is not in the vocabulary"))).collect::<Result<_>>()?,
        Level::Char => prime.chars().map(|c| vocab.id(&c.to_string()).with_context(|| format!("{c:?} is not in the vocabulary"))).collect::<Result<_>>()?,
    };
    if ids.is_empty() {
        // start as a new line would
        let start = vocab.id(if level == Level::Word { "<eos>" } else { "\n" }).unwrap_or(0);
        ids.push(start);
    }
    let primed = ids.len();
    let mut rng = Rng::seed(seed);
    let mut h = ndarray::Array2::<f32>::zeros((1, model.state_width()));
    // read the prime, then feed back each sampled token
    let mut out = ids.clone();
    for t in 0..primed + len - 1 {
        let tok = out[t];
        let x = crate::models::SeqInput::Tokens { ids: &[tok], t_len: 1, batch: 1 };
        let states = model.forward(&p, x, h.view());
        let y = model.readout_forward(&p, states.view());
        h = states.index_axis(ndarray::Axis(0), 1).to_owned();
        if t + 1 >= primed {
            out.push(crate::data::text::sample_index(y.as_slice().expect("contiguous"), temperature, &mut rng) as u32);
        }
    }
    Ok(crate::data::text::detokenize(&vocab, &out, level))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ModelKind;

    fn sd(v: &[f32]) -> f64 {
        (v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
    }

    #[test]
    fn reference_init_draws_small_weights_and_a_zero_readout() {
        for kind in [ModelKind::Scrn, ModelKind::Lstm, ModelKind::Rnn] {
            let mut cfg = TrainConfig { model: kind, hidden: 40, context: 10, ..TrainConfig::default() };
            let model = lm_model(&cfg, 500).unwrap();
            let scaled = init_params(&model, &cfg);
            cfg.lm_init = LmInit::Reference;
            let p = init_params(&model, &cfg);
            let l = model.layout();
            for name in ["w_in", "w_rec"] {
                let s = sd(&p[l.get(name).unwrap().range()]);
                assert!((s - REFERENCE_INIT_SD).abs() < 0.1 * REFERENCE_INIT_SD, "{kind:?} {name}: sd {s}");
            }
            assert!(p[l.get("w_out").unwrap().range()].iter().all(|v| *v == 0.0), "{kind:?}: readout not zero");
            // the scaled embeddings are ten times larger
            let s = sd(&scaled[l.get("w_in").unwrap().range()]);
            assert!((s - 0.5).abs() < 0.05, "{kind:?}: scaled w_in sd {s}");
            // biases stay as the family sets them (the LSTM's forget gate at 1)
            if let Ok(b) = l.get("b") {
                assert_eq!(&p[b.range()], &scaled[b.range()], "{kind:?}: biases changed");
            }
        }
        assert!(LmInit::parse("glorot").is_err());
    }
}
