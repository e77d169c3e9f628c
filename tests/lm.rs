//! Language modelling end to end: perplexity of a uniform model, a short
//! PTB run that lowers validation perplexity, eval, sampling and resume.

use longmem::config::TrainConfig;
use longmem::data::text::{Corpus, Streams};
use longmem::device::Engine;
use longmem::gpu::testing::test_context;
use longmem::models::ModelKind;
use longmem::rng::Rng;
use longmem::tasks::TaskKind;
use longmem::train::cpu::CpuBackend;
use longmem::train::gpu::GpuBackend;
use longmem::train::lm::{self, split_nll};
use longmem::train::run::RunOptions;
use std::path::PathBuf;

fn ptb_dir() -> PathBuf {
    match std::env::var("LONGMEM_PTB") {
        Ok(d) => PathBuf::from(d),
        Err(_) => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/ptb"),
    }
}

/// The PTB files, beside the checkout in ../shared/data/ptb or at LONGMEM_PTB.
fn have_ptb(test: &str) -> bool {
    common::have(test, "PTB", &ptb_dir().join("ptb.train.txt"), "LONGMEM_PTB")
}

mod common;

fn tmp(name: &str) -> PathBuf {
    common::tmp("lm", name)
}

fn ptb_config() -> TrainConfig {
    let mut c = TrainConfig {
        task: TaskKind::Ptb,
        model: ModelKind::Lstm,
        data: Some(ptb_dir().display().to_string()),
        device: "cpu".into(),
        ..Default::default()
    };
    c.apply_lm_defaults();
    c
}

/// With a zero readout every token has probability 1/V: perplexity V, on
/// both backends, whatever the recurrent state does.
#[test]
fn uniform_model_has_perplexity_equal_to_the_vocabulary_size() {
    let mut rng = Rng::seed(5);
    let v = 50;
    let tokens: Vec<u32> = (0..2000).map(|_| rng.below(v) as u32).collect();
    for kind in [ModelKind::Rnn, ModelKind::Lstm, ModelKind::Gru, ModelKind::Scrn] {
        let cfg = TrainConfig { model: kind, hidden: 12, ..ptb_config() };
        let model = lm::lm_model(&cfg, v).unwrap();
        let mut p = model.init(&cfg.init_config(), &mut rng);
        for name in ["w_out", "b_out"] {
            let r = model.layout().get(name).unwrap().range();
            p[r].iter_mut().for_each(|x| *x = 0.0);
        }
        let mut cpu = CpuBackend::new(model.clone(), p.clone()).unwrap();
        let ppl = split_nll(&mut cpu, &tokens, 8, 13).unwrap().exp();
        assert!((ppl / v as f64 - 1.0).abs() < 1e-5, "{kind:?}: cpu perplexity {ppl}, expected {v}");
        if let Some(ctx) = test_context("lm uniform") {
            let mut gpu = GpuBackend::new(ctx, model, &p, Default::default()).unwrap();
            let ppl = split_nll(&mut gpu, &tokens, 8, 13).unwrap().exp();
            assert!((ppl / v as f64 - 1.0).abs() < 1e-5, "{kind:?}: gpu perplexity {ppl}, expected {v}");
        }
    }
}

/// The validation perplexity over B streams counts every target once and
/// does not depend on the segment length when the state is carried.
#[test]
fn split_perplexity_carries_the_state_across_segments() {
    let mut rng = Rng::seed(6);
    let v = 20;
    let tokens: Vec<u32> = (0..600).map(|_| rng.below(v) as u32).collect();
    let cfg = TrainConfig { model: ModelKind::Lstm, hidden: 9, ..ptb_config() };
    let model = lm::lm_model(&cfg, v).unwrap();
    let p = model.init(&cfg.init_config(), &mut rng);
    let mut cpu = CpuBackend::new(model, p).unwrap();
    let a = split_nll(&mut cpu, &tokens, 4, 149).unwrap();
    let b = split_nll(&mut cpu, &tokens, 4, 7).unwrap();
    assert!((a - b).abs() < 1e-5, "whole streams {a} vs segments of 7 {b}");
    let streams = Streams::new(&tokens, 4).unwrap();
    assert_eq!(streams.num_targets(7), 4 * 149);
}

/// A short LSTM run on the first 40k PTB training tokens: the validation
/// perplexity falls far below its start (an untrained model sits near
/// 10,000, a unigram model near 700); eval, sample and resume work.
#[test]
fn short_ptb_run_lowers_validation_perplexity() {
    if !have_ptb("short_ptb_run_lowers_validation_perplexity") {
        return;
    }
    let dir = tmp("ptb");
    let cfg = TrainConfig { hidden: 16, bptt: 20, epochs: 1, train_tokens: Some(40_000), log_every: 20, ..ptb_config() };
    let opts = RunOptions { out: dir.clone(), resume: false, verbose: false };
    lm::train_on(&cfg, &opts, &Engine::Cpu).unwrap();
    let lines = longmem::train::metrics::read(&dir.join("metrics.jsonl")).unwrap();
    let valid: Vec<f64> = lines.iter().filter(|l| l.phase.as_deref() == Some("valid")).map(|l| l.perplexity.unwrap()).collect();
    assert_eq!(valid.len(), 2, "a line before training and one after the epoch");
    assert!(valid[0] > 5000.0, "untrained perplexity {}", valid[0]);
    assert!(valid[1] < 2000.0, "after one short epoch the validation perplexity is {}", valid[1]);
    for f in ["config.toml", "checkpoint.safetensors", "vocab.txt", "lm_state.json", "loss.svg"] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    let r = lm::evaluate(&dir, &cfg, &Engine::Cpu).unwrap();
    assert!((r.perplexity.valid - valid[1]).abs() < 1e-6 * valid[1], "eval {} vs training's {}", r.perplexity.valid, valid[1]);
    assert!(r.perplexity.test.is_finite() && r.bits_per_char.is_none());
    assert_eq!((r.tokens.valid, r.tokens.test), (73_760, 82_430));

    let text = lm::sample(&dir, &cfg, "the company", 30, 1.0, 3).unwrap();
    let words = text.split_whitespace().count();
    assert!(words >= 2 + 20, "sampled {words} words: {text}");
    assert!(lm::sample(&dir, &cfg, "the", 5, -1.0, 3).is_err());
    std::fs::remove_dir_all(&dir).ok();
}

/// A scratch dir holding `text.txt`: a text with structure, 3000 words
/// drawn from a small lexicon with `seed`.
fn lexicon_text(name: &str, seed: u64) -> (PathBuf, PathBuf) {
    let dir = tmp(name);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("text.txt");
    let mut rng = Rng::seed(seed);
    let lexicon = ["the ", "cat ", "sat ", "on ", "a ", "mat.\n", "dog ", "ran "];
    let text: String = (0..3000).map(|_| lexicon[rng.below(lexicon.len())]).collect();
    std::fs::write(&file, text).unwrap();
    (dir, file)
}

/// Character level on a small text file: bits per char are reported, a
/// finished schedule refuses to resume without more epochs, and a resumed
/// run continues from the last finished epoch.
#[test]
fn char_level_run_resumes_after_its_last_epoch() {
    let (dir, file) = lexicon_text("char", 8);
    let run = dir.join("run");
    let cfg = TrainConfig {
        task: TaskKind::Text,
        level: "char".into(),
        data: Some(file.display().to_string()),
        hidden: 16,
        bptt: 16,
        batch: 8,
        epochs: 1,
        log_every: 10,
        ..ptb_config()
    };
    let opts = RunOptions { out: run.clone(), resume: false, verbose: false };
    lm::train_on(&cfg, &opts, &Engine::Cpu).unwrap();
    let r = lm::evaluate(&run, &cfg, &Engine::Cpu).unwrap();
    let bpc = r.bits_per_char.expect("char level reports bits per char");
    assert!((bpc.valid - r.nll.valid / std::f64::consts::LN_2).abs() < 1e-12);
    assert!(r.perplexity.valid < r.vocab as f64 / 2.0, "perplexity {} of {} symbols", r.perplexity.valid, r.vocab);

    let again = RunOptions { resume: true, ..opts };
    let e = lm::train_on(&cfg, &again, &Engine::Cpu).unwrap_err();
    assert!(format!("{e:#}").contains("--epochs"), "{e:#}");
    let more = TrainConfig { epochs: 3, ..cfg.clone() };
    lm::train_on(&more, &again, &Engine::Cpu).unwrap();
    let lines = longmem::train::metrics::read(&run.join("metrics.jsonl")).unwrap();
    let epochs: Vec<_> = lines.iter().filter(|l| l.phase.as_deref() == Some("valid")).map(|l| l.epoch.unwrap()).collect();
    assert_eq!(epochs, vec![0, 1, 2, 3]);
    let steps: Vec<u64> = lines.iter().map(|l| l.step).collect();
    assert!(steps.windows(2).all(|w| w[0] <= w[1]), "metrics steps go back: {steps:?}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Each family starts from its own PTB recipe (the README's table was run
/// with these); flags given on the command line override them (tests/cli.rs).
#[test]
fn language_model_defaults_depend_on_the_model() {
    let recipe = |model| {
        let mut c = TrainConfig { model, ..Default::default() };
        c.apply_lm_defaults();
        assert_eq!((c.clip, c.batch, c.hidden), (5.0, 32, 100));
        (c.lr, c.bptt, c.gain)
    };
    assert_eq!(recipe(ModelKind::Rnn), (0.3, 10, 0.5));
    assert_eq!(recipe(ModelKind::Scrn), (1.0, 10, 1.0));
    assert_eq!(recipe(ModelKind::Srn), (2.0, 10, 1.0));
    assert_eq!(recipe(ModelKind::Lstm), (1.0, 20, 1.0));
    assert_eq!(recipe(ModelKind::Gru), (1.0, 20, 1.0));
}

#[test]
fn language_model_settings_are_checked() {
    let c = TrainConfig { data: None, ..ptb_config() };
    assert!(format!("{:#}", c.validate().unwrap_err()).contains("--data"));
    let c = TrainConfig { level: "byte".into(), task: TaskKind::Text, ..ptb_config() };
    assert!(format!("{:#}", c.validate().unwrap_err()).contains("byte"));
    let c = TrainConfig { lr_divide: 1.0, ..ptb_config() };
    assert!(format!("{:#}", c.validate().unwrap_err()).contains("--lr-divide"));
    let c = TrainConfig { data: Some("/nonexistent/ptb".into()), ..ptb_config() };
    assert!(lm::corpus(&c).is_err());
    // the hidden-state gradient rescaling is the SCRN's, finite and >= 0
    let c = TrainConfig { state_grad_clip: 1.5, ..ptb_config() };
    assert!(format!("{:#}", c.validate().unwrap_err()).contains("--state-grad-clip"));
    for bad in [-1.0, f64::NAN, f64::INFINITY] {
        let c = TrainConfig { model: ModelKind::Scrn, state_grad_clip: bad, ..ptb_config() };
        assert!(format!("{:#}", c.validate().unwrap_err()).contains("--state-grad-clip"), "{bad}");
    }
    let c = TrainConfig { model: ModelKind::Scrn, state_grad_clip: 1.5, ..ptb_config() };
    c.validate().unwrap();
    match lm::lm_model(&c, 50).unwrap() {
        longmem::models::Model::Scrn(m) => assert_eq!(m.state_grad_clip, Some(1.5)),
        other => panic!("expected an SCRN, got {:?}", other.kind()),
    }
    if have_ptb("language_model_settings_are_checked") {
        let corpus = Corpus::ptb(&ptb_dir()).unwrap();
        assert_eq!(corpus.vocab.len(), 10_000);
    }
}

/// Overlapping BPTT windows (`--bptt-stride`): each window starts from the
/// state its predecessor left at `carry_at`, so with the weights held fixed
/// the summed window losses are the split's NLL, on the CPU reference
/// (SCRN), the fast CPU path (LSTM) and the GPU, through both the training
/// (`gradients`) and the evaluation passes. A wrong carried state or a
/// target scored twice would move the sum.
#[test]
fn overlapping_windows_carry_the_state_from_the_right_step() {
    use longmem::train::backend::Backend;
    let mut rng = Rng::seed(12);
    let v = 23;
    let tokens: Vec<u32> = (0..500).map(|_| rng.below(v) as u32).collect();
    let streams = Streams::new(&tokens, 4).unwrap();
    let n = streams.num_targets(1) as f64;
    for kind in [ModelKind::Scrn, ModelKind::Lstm] {
        let cfg = TrainConfig { model: kind, hidden: 9, context: 3, ..ptb_config() };
        let model = lm::lm_model(&cfg, v).unwrap();
        let p = model.init(&cfg.init_config(), &mut rng);
        let mut cpu = CpuBackend::new(model.clone(), p.clone()).unwrap();
        let want = split_nll(&mut cpu, &tokens, 4, 200).unwrap();
        let mut backends: Vec<(&str, Box<dyn Backend>)> = vec![("cpu", Box::new(cpu))];
        if let Some(ctx) = test_context("lm overlapping windows") {
            backends.push(("gpu", Box::new(GpuBackend::new(ctx, model, &p, Default::default()).unwrap())));
        }
        for (name, be) in backends.iter_mut() {
            for (bptt, stride) in [(10, 5), (7, 3), (6, 1)] {
                let (mut by_eval, mut by_grads) = (0.0, 0.0);
                for w in streams.windows(bptt, stride) {
                    let b = lm::segment_batch(&w);
                    by_eval += be.evaluate(&b).unwrap().0 as f64 * 4.0;
                }
                for w in streams.windows(bptt, stride) {
                    by_grads += be.gradients(&lm::segment_batch(&w)).unwrap().0 as f64 * 4.0;
                }
                for (pass, got) in [("evaluate", by_eval / n), ("gradients", by_grads / n)] {
                    assert!((got - want).abs() < 2e-5 * want, "{kind:?} {name} bptt {bptt} stride {stride} {pass}: {got} vs split NLL {want}");
                }
            }
        }
    }
    let c = TrainConfig { bptt: 10, bptt_stride: Some(11), ..ptb_config() };
    assert!(format!("{:#}", c.validate().unwrap_err()).contains("--bptt-stride"));
    let c = TrainConfig { bptt_stride: Some(0), ..ptb_config() };
    assert!(c.validate().is_err());
}

/// A run with overlapping windows takes one update per `--bptt-stride`
/// steps of every stream, learns, and records the stride in its config.
#[test]
fn overlapping_windows_train_a_char_model() {
    let (dir, file) = lexicon_text("stride", 9);
    let run = dir.join("run");
    let cfg = TrainConfig {
        task: TaskKind::Text,
        level: "char".into(),
        data: Some(file.display().to_string()),
        model: ModelKind::Scrn,
        hidden: 16,
        context: 4,
        bptt: 12,
        bptt_stride: Some(4),
        batch: 8,
        epochs: 1,
        log_every: 1,
        ..ptb_config()
    };
    lm::train_on(&cfg, &RunOptions { out: run.clone(), resume: false, verbose: false }, &Engine::Cpu).unwrap();
    let corpus = lm::corpus(&cfg).unwrap();
    let windows = Streams::new(&corpus.train, 8).unwrap().num_windows(4) as u64;
    let lines = longmem::train::metrics::read(&run.join("metrics.jsonl")).unwrap();
    let last = lines.iter().filter(|l| l.is_training()).map(|l| l.step).max().unwrap();
    assert_eq!(last, windows, "one update per window");
    let r = lm::evaluate(&run, &cfg, &Engine::Cpu).unwrap();
    assert!(r.perplexity.valid < r.vocab as f64 / 2.0, "perplexity {} of {} symbols", r.perplexity.valid, r.vocab);
    let saved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(saved.contains("bptt_stride = 4"), "{saved}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Character level on the real tiny Shakespeare (`../shared/data/tinyshakespeare`,
/// split 90/5/5 in order): one epoch of a small GRU over its first 200k
/// training characters brings validation and test bits per character
/// a bit below the entropy of the characters' own frequencies (what a model
/// that ignores context reaches), so it has learned from the context.
#[test]
fn short_tiny_shakespeare_run_lowers_bits_per_char() {
    let file = common::data_dir().join("tinyshakespeare/input.txt");
    if !common::have("short_tiny_shakespeare_run_lowers_bits_per_char", "tiny Shakespeare", &file, "LONGMEM_DATA") {
        return;
    }
    let dir = tmp("shakespeare");
    let cfg = TrainConfig {
        task: TaskKind::Text,
        level: "char".into(),
        data: Some(file.display().to_string()),
        model: ModelKind::Gru,
        hidden: 64,
        bptt: 25,
        batch: 16,
        epochs: 1,
        train_tokens: Some(200_000),
        log_every: 50,
        ..ptb_config()
    };
    lm::train_on(&cfg, &RunOptions { out: dir.clone(), resume: false, verbose: false }, &Engine::Cpu).unwrap();
    let r = lm::evaluate(&dir, &cfg, &Engine::Cpu).unwrap();
    let bpc = r.bits_per_char.expect("char level reports bits per char");
    assert!(r.vocab > 50 && r.vocab < 80, "tiny Shakespeare has {} distinct characters", r.vocab);
    let train = lm::corpus(&cfg).unwrap().train;
    let mut counts = vec![0f64; r.vocab];
    train.iter().for_each(|&c| counts[c as usize] += 1.0);
    let n = train.len() as f64;
    let unigram: f64 = counts.iter().filter(|&&c| c > 0.0).map(|&c| -(c / n) * (c / n).log2()).sum();
    eprintln!("tiny Shakespeare, one epoch over 200k characters: bits per char {bpc:?}; unigram entropy {unigram:.2}");
    assert!(bpc.valid < unigram - 1.0 && bpc.test < unigram - 1.0, "bits per char {bpc:?} against the unigram entropy {unigram:.2}");
    std::fs::remove_dir_all(&dir).ok();
}
