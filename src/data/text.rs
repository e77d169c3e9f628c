//! Text corpora for language modelling: tokenising, vocabularies, train /
//! valid / test splits, and batching into parallel streams for truncated BPTT.
//!
//! Tokens: at word level every line is split on whitespace and ends with the
//! token `<eos>` (the PTB convention); at char level every Unicode char of the
//! text is a token, '\n' included.
//!
//! Vocabulary file format: UTF-8 text, one token per line in id order (line k
//! holds token k), every line ending in '\n'. So that any char can be a token,
//! five characters are escaped: backslash as `\\`, newline as `\n`, carriage
//! return as `\r`, tab as `\t`, and space as `\s`. No other escapes exist, and
//! empty lines and duplicate tokens are rejected on load.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};

use crate::rng::Rng;

/// The end-of-line token at word level.
pub const EOS: &str = "<eos>";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Word,
    Char,
}

impl Level {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "word" => Ok(Level::Word),
            "char" => Ok(Level::Char),
            other => bail!("unknown token level '{other}': expected word or char"),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Level::Word => "word",
            Level::Char => "char",
        }
    }
}

/// Split text into tokens (borrowed slices, so a large corpus costs no
/// allocation per token).
fn tokenize(text: &str, level: Level) -> Vec<&str> {
    match level {
        Level::Word => {
            let mut out = Vec::new();
            for line in text.lines() {
                out.extend(line.split_whitespace());
                out.push(EOS);
            }
            out
        }
        Level::Char => text.char_indices().map(|(i, c)| &text[i..i + c.len_utf8()]).collect(),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocab {
    tokens: Vec<String>,
    index: HashMap<String, u32>,
}

impl Vocab {
    /// A vocabulary with ids in the given order; tokens must be distinct and non-empty.
    pub fn new(tokens: Vec<String>) -> Result<Vocab> {
        ensure!(u32::try_from(tokens.len()).is_ok(), "vocabulary of {} tokens does not fit u32 ids", tokens.len());
        let mut index = HashMap::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            ensure!(!t.is_empty(), "vocabulary token {i} is empty");
            if index.insert(t.clone(), i as u32).is_some() {
                bail!("vocabulary token {:?} appears twice", t);
            }
        }
        Ok(Vocab { tokens, index })
    }

    /// Distinct tokens in order of first appearance.
    fn first_appearance(tokens: &[&str]) -> Result<Vocab> {
        let mut seen = HashSet::new();
        let list = tokens.iter().filter(|t| seen.insert(**t)).map(|t| t.to_string()).collect();
        Vocab::new(list)
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn id(&self, token: &str) -> Option<u32> {
        self.index.get(token).copied()
    }

    /// The token for an id; an id outside the vocabulary reads as U+FFFD
    /// (like lossy UTF-8 decoding) rather than panicking mid-generation.
    pub fn token(&self, id: u32) -> &str {
        self.tokens.get(id as usize).map_or("\u{FFFD}", |s| s.as_str())
    }

    /// Map tokens to ids; `source` names where they came from for the error.
    fn encode(&self, tokens: &[&str], source: &Path) -> Result<Vec<u32>> {
        tokens
            .iter()
            .map(|t| match self.id(t) {
                Some(id) => Ok(id),
                None => bail!("token {:?} in {} is not in the vocabulary", t, source.display()),
            })
            .collect()
    }

    /// Save in the format described at the top of this file, atomically
    /// (write `path.tmp`, then rename) so a crash never leaves half a vocabulary.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut text = String::new();
        for t in &self.tokens {
            for c in t.chars() {
                match c {
                    '\\' => text.push_str("\\\\"),
                    '\n' => text.push_str("\\n"),
                    '\r' => text.push_str("\\r"),
                    '\t' => text.push_str("\\t"),
                    ' ' => text.push_str("\\s"),
                    c => text.push(c),
                }
            }
            text.push('\n');
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            let mut f = fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
            f.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", tmp.display()))?;
            f.sync_all()?;
        }
        fs::rename(&tmp, path).with_context(|| format!("cannot move {} into place", path.display()))
    }

    pub fn load(path: &Path) -> Result<Vocab> {
        let text = read_text(path)?;
        let Some(body) = text.strip_suffix('\n') else {
            bail!("vocabulary file {} is empty or lacks its final newline", path.display());
        };
        let mut tokens = Vec::new();
        for (k, line) in body.split('\n').enumerate() {
            let mut tok = String::with_capacity(line.len());
            let mut chars = line.chars();
            while let Some(c) = chars.next() {
                if c != '\\' {
                    tok.push(c);
                    continue;
                }
                tok.push(match chars.next() {
                    Some('\\') => '\\',
                    Some('n') => '\n',
                    Some('r') => '\r',
                    Some('t') => '\t',
                    Some('s') => ' ',
                    other => bail!("{} line {}: bad escape {:?}", path.display(), k + 1, other),
                });
            }
            tokens.push(tok);
        }
        Vocab::new(tokens).with_context(|| format!("in vocabulary file {}", path.display()))
    }
}

/// Read a whole file as UTF-8, with errors that name the file.
fn read_text(path: &Path) -> Result<String> {
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!("{} is not valid UTF-8 (first bad byte at offset {})", path.display(), e.utf8_error().valid_up_to())
    })
}

/// Read a corpus file, refusing one with nothing to model.
fn read_corpus(path: &Path, level: Level) -> Result<String> {
    let text = read_text(path)?;
    let empty = match level {
        Level::Word => text.split_whitespace().next().is_none(),
        Level::Char => text.is_empty(),
    };
    ensure!(!empty, "{} is empty", path.display());
    Ok(text)
}

#[derive(Clone, Debug)]
pub struct Corpus {
    pub vocab: Vocab,
    pub level: Level,
    pub train: Vec<u32>,
    pub valid: Vec<u32>,
    pub test: Vec<u32>,
}

impl Corpus {
    /// Penn Treebank (Mikolov's preprocessing): word level, vocabulary from the
    /// training file in order of first appearance. An unknown word in valid or
    /// test is an error, since PTB maps every rare word to `<unk>` already.
    pub fn ptb(dir: &Path) -> Result<Corpus> {
        let paths = ["ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"].map(|f| dir.join(f));
        for p in &paths {
            ensure!(p.is_file(), "PTB file {} is missing", p.display());
        }
        let texts = paths.iter().map(|p| read_corpus(p, Level::Word)).collect::<Result<Vec<_>>>()?;
        let train_tokens = tokenize(&texts[0], Level::Word);
        let vocab = Vocab::first_appearance(&train_tokens)?;
        let train = vocab.encode(&train_tokens, &paths[0])?;
        let valid = vocab.encode(&tokenize(&texts[1], Level::Word), &paths[1])?;
        let test = vocab.encode(&tokenize(&texts[2], Level::Word), &paths[2])?;
        Ok(Corpus { vocab, level: Level::Word, train, valid, test })
    }

    /// Any text file, split contiguously by token count into
    /// (train, valid, test) fractions, e.g. (0.9, 0.05, 0.05). The vocabulary
    /// covers the whole file so valid and test never hold unknown symbols.
    pub fn text(path: &Path, level: Level, split: (f64, f64, f64)) -> Result<Corpus> {
        let (a, b, c) = split;
        ensure!(
            [a, b, c].iter().all(|f| f.is_finite() && *f > 0.0) && (a + b + c - 1.0).abs() <= 1e-9,
            "split fractions {a}/{b}/{c} must be positive and sum to 1"
        );
        let text = read_corpus(path, level)?;
        let tokens = tokenize(&text, level);
        let vocab = match level {
            Level::Word => Vocab::first_appearance(&tokens)?,
            // A set first: sorting every char of a large file would be slow.
            Level::Char => Vocab::new(text.chars().collect::<BTreeSet<char>>().into_iter().map(String::from).collect())?,
        };
        let ids = vocab.encode(&tokens, path)?;
        let n = ids.len();
        // Floor the first two so rounding can never overrun; test takes the rest.
        let n_train = (n as f64 * a).floor() as usize;
        let n_valid = (n as f64 * b).floor() as usize;
        let n_test = n.saturating_sub(n_train + n_valid);
        ensure!(
            n_train >= 2 && n_valid >= 2 && n_test >= 2,
            "{} has {n} {} tokens: split {a}/{b}/{c} gives {n_train}/{n_valid}/{n_test}, \
             and every part needs at least 2",
            path.display(),
            level.name()
        );
        let train = ids[..n_train].to_vec();
        let valid = ids[n_train..n_train + n_valid].to_vec();
        let test = ids[n_train + n_valid..].to_vec();
        Ok(Corpus { vocab, level, train, valid, test })
    }
}

/// A token sequence cut into `batch` contiguous streams of `len` tokens, stored
/// time-major: `data[t * batch + b]` is token `t` of stream `b`.
#[derive(Clone, Debug)]
pub struct Streams {
    data: Vec<u32>,
    pub len: usize,
    pub batch: usize,
}

/// One truncated-BPTT window, time-major: row `t * batch + b`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub inputs: Vec<u32>,
    pub targets: Vec<u32>,
    pub t_len: usize,
    pub batch: usize,
    /// leading steps already scored by the window before: they run (and
    /// pass gradients back through the recurrence) but add no loss
    pub context: usize,
    /// starts from the state the window before left (else the model's own)
    pub carry_in: bool,
    /// the next window starts from the state after this many steps
    pub carry_at: usize,
}

impl Segment {
    /// Steps whose targets count in the loss.
    pub fn scored(&self) -> usize {
        self.t_len - self.context
    }
}

impl Streams {
    /// Stream b is `tokens[b*len .. (b+1)*len]` with `len = tokens.len() / batch`;
    /// the remainder is dropped (the Mikolov / Zaremba batching).
    pub fn new(tokens: &[u32], batch: usize) -> Result<Streams> {
        ensure!(batch >= 1, "batch must be at least 1");
        let len = tokens.len() / batch;
        ensure!(len >= 2, "{} tokens in {batch} streams leave {len} per stream; need at least 2", tokens.len());
        let data = (0..len * batch).map(|r| tokens[(r % batch) * len + r / batch]).collect();
        Ok(Streams { data, len, batch })
    }

    /// Token `t` of stream `b` (panics out of range, like slice indexing).
    pub fn at(&self, t: usize, b: usize) -> u32 {
        assert!(t < self.len && b < self.batch, "Streams::at({t}, {b}) outside ({}, {})", self.len, self.batch);
        self.data[t * self.batch + b]
    }

    pub fn num_segments(&self, bptt: usize) -> usize {
        (self.len - 1).div_ceil(bptt.max(1))
    }

    pub fn num_targets(&self, _bptt: usize) -> usize {
        self.batch * (self.len - 1)
    }

    /// Windows of `bptt` steps (0 is taken as 1), in order, each continuing
    /// every stream where the previous stopped, so recurrent state can be
    /// carried across; the last is shorter when `bptt` does not divide `len - 1`.
    pub fn segments(&self, bptt: usize) -> impl Iterator<Item = Segment> + '_ {
        self.windows(bptt, bptt)
    }

    /// Overlapping windows, as Mikolov's RNNLM and the SCRN reference code
    /// train (backprop_len `bptt`, backprop_freq `stride`): window k scores
    /// the targets `k·stride .. (k+1)·stride` and reaches back to cover
    /// `bptt` steps (fewer at the start of the streams), so every update
    /// backpropagates through at least `bptt − stride + 1` steps. Each
    /// target is scored once. `stride` is clamped to `1..=bptt`;
    /// `stride == bptt` gives [`Streams::segments`].
    pub fn windows(&self, bptt: usize, stride: usize) -> impl Iterator<Item = Segment> + '_ {
        let bptt = bptt.max(1);
        let stride = stride.clamp(1, bptt);
        let b = self.batch;
        let targets = self.len - 1;
        let start = move |k: usize| ((k + 1) * stride).saturating_sub(bptt);
        (0..targets.div_ceil(stride)).map(move |k| {
            let (a, scored_from) = (start(k), k * stride);
            let end = ((k + 1) * stride).min(targets);
            // Time-major rows are contiguous, so a window is a plain slice.
            Segment {
                inputs: self.data[a * b..end * b].to_vec(),
                targets: self.data[(a + 1) * b..(end + 1) * b].to_vec(),
                t_len: end - a,
                batch: b,
                context: scored_from - a,
                carry_in: a > 0,
                carry_at: (start(k + 1) - a).min(end - a),
            }
        })
    }

    pub fn num_windows(&self, stride: usize) -> usize {
        (self.len - 1).div_ceil(stride.max(1))
    }
}

/// Draw an index from softmax(logits / temperature). Temperature 0 (or any
/// non-positive or NaN value) means argmax. Logits are shifted by their max
/// before exponentiating, so huge values cannot overflow; NaN logits are never
/// drawn. An empty slice gives 0.
pub fn sample_index(logits: &[f32], temperature: f64, rng: &mut Rng) -> usize {
    // First maximum; `>` skips NaN.
    let argmax = || {
        let pick = |(bi, bv): (usize, f32), (i, &v): (usize, &f32)| if v > bv { (i, v) } else { (bi, bv) };
        logits.iter().enumerate().fold((0, f32::NEG_INFINITY), pick).0
    };
    if temperature.is_nan() || temperature <= 0.0 || logits.is_empty() {
        return argmax();
    }
    let m = logits[argmax()] as f64;
    if !m.is_finite() {
        return argmax(); // all -inf / NaN, or a +inf logit that wins outright
    }
    // A NaN logit (or -inf at infinite temperature) gets weight 0, never drawn.
    let w: Vec<f64> = logits
        .iter()
        .map(|&v| ((v as f64 - m) / temperature).exp())
        .map(|x| if x.is_nan() { 0.0 } else { x })
        .collect();
    let total: f64 = w.iter().sum();
    if total.is_nan() || total <= 0.0 || total.is_infinite() {
        return argmax();
    }
    let mut u = rng.uniform() * total;
    let mut last = 0;
    for (i, &wi) in w.iter().enumerate() {
        if wi > 0.0 {
            last = i;
            if u < wi {
                return i;
            }
            u -= wi;
        }
    }
    last // only reached through rounding in the running subtraction
}

/// Turn ids back into text: words joined by spaces with `<eos>` as a newline,
/// chars concatenated.
pub fn detokenize(vocab: &Vocab, ids: &[u32], level: Level) -> String {
    let mut out = String::new();
    match level {
        Level::Char => ids.iter().for_each(|&id| out.push_str(vocab.token(id))),
        Level::Word => {
            for &id in ids {
                match vocab.token(id) {
                    EOS => out.push('\n'),
                    t => {
                        if !(out.is_empty() || out.ends_with('\n')) {
                            out.push(' ');
                        }
                        out.push_str(t);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("longmem-text-{}-{name}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn level_parse() {
        assert_eq!(Level::parse("word").unwrap(), Level::Word);
        assert_eq!(Level::parse("char").unwrap().name(), "char");
        assert!(format!("{}", Level::parse("byte").unwrap_err()).contains("byte"));
    }

    #[test]
    fn vocab_round_trip_with_awkward_chars() {
        let dir = scratch("vocab");
        let toks = ["\n", " ", "\\", "é", "\t", "\r", "a\\nb", "\\s", "<eos>", "日本", "x y"];
        let v = Vocab::new(toks.iter().map(|s| s.to_string()).collect()).unwrap();
        let path = dir.join("vocab.txt");
        v.save(&path).unwrap();
        assert!(!dir.join("vocab.txt.tmp").exists());
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), toks.len(), "one token per line: {text:?}");
        let w = Vocab::load(&path).unwrap();
        assert_eq!(w, v);
        assert_eq!(w.id("\n"), Some(0));
        assert_eq!(w.token(3), "é");
        assert_eq!(w.token(99), "\u{FFFD}");
        assert_eq!(detokenize(&w, &[9, 10, 8, 9, 8], Level::Word), "日本 x y\n日本\n");

        fs::write(&path, "a\n\\q\n").unwrap();
        assert!(Vocab::load(&path).is_err(), "unknown escape");
        fs::write(&path, "a\nb\na\n").unwrap();
        assert!(Vocab::load(&path).is_err(), "duplicate");
        fs::write(&path, "a\n\nb\n").unwrap();
        assert!(Vocab::load(&path).is_err(), "empty token");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ptb_counts() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/ptb");
        if !dir.join("ptb.train.txt").exists() {
            println!("skipping: no PTB at {}", dir.display());
            return;
        }
        let c = Corpus::ptb(&dir).unwrap();
        assert_eq!(c.vocab.len(), 10_000);
        assert_eq!((c.train.len(), c.valid.len(), c.test.len()), (929_589, 73_760, 82_430));
        let eos = c.vocab.id(EOS).unwrap();
        assert_eq!(*c.train.last().unwrap(), eos);
        // The first line of ptb.train.txt round-trips through detokenize.
        let first_line: Vec<u32> = c.train.iter().copied().take_while(|&t| t != eos).collect();
        let text = fs::read_to_string(dir.join("ptb.train.txt")).unwrap();
        let want = text.lines().next().unwrap().split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(detokenize(&c.vocab, &first_line, Level::Word), want);
        let err = format!("{:#}", Corpus::ptb(&dir.join("nowhere")).unwrap_err());
        assert!(err.contains("ptb.train.txt"), "{err}");
    }

    #[test]
    fn text_splits_and_errors() {
        let dir = scratch("text");
        let path = dir.join("t.txt");
        let body: String = (0..100).map(|i| char::from(b'a' + (i % 7) as u8)).collect::<String>() + "\n";
        fs::write(&path, &body).unwrap(); // 101 chars
        let c = Corpus::text(&path, Level::Char, (0.9, 0.05, 0.05)).unwrap();
        assert_eq!((c.train.len(), c.valid.len(), c.test.len()), (90, 5, 6));
        assert_eq!(c.vocab.len(), 8);
        assert_eq!(c.vocab.token(0), "\n", "char vocab is sorted");
        let all: Vec<u32> = [c.train.clone(), c.valid, c.test].concat();
        assert_eq!(detokenize(&c.vocab, &all, Level::Char), body);

        fs::write(&path, "the cat sat\non the mat\n".repeat(10)).unwrap();
        let c = Corpus::text(&path, Level::Word, (0.8, 0.1, 0.1)).unwrap();
        assert_eq!((c.train.len(), c.valid.len(), c.test.len()), (64, 8, 8));
        assert_eq!(c.vocab.token(0), "the");
        assert_eq!(c.vocab.token(3), EOS, "word vocab in first appearance");

        for bad in [(0.9, 0.1, 0.0), (0.5, 0.3, 0.3), (1.2, -0.1, -0.1), (f64::NAN, 0.5, 0.5)] {
            assert!(Corpus::text(&path, Level::Word, bad).is_err(), "{bad:?}");
        }
        fs::write(&path, "abcdefghij").unwrap();
        let err = format!("{:#}", Corpus::text(&path, Level::Char, (0.9, 0.05, 0.05)).unwrap_err());
        assert!(err.contains("at least 2"), "{err}");
        fs::write(&path, "").unwrap();
        assert!(Corpus::text(&path, Level::Char, (0.8, 0.1, 0.1)).is_err());
        fs::write(&path, " \n\n").unwrap();
        assert!(Corpus::text(&path, Level::Word, (0.8, 0.1, 0.1)).is_err());
        fs::write(&path, [b'a', 0xff, b'b', b'\n'].repeat(20)).unwrap();
        let err = format!("{:#}", Corpus::text(&path, Level::Char, (0.8, 0.1, 0.1)).unwrap_err());
        assert!(err.contains("UTF-8"), "{err}");
        let missing = dir.join("missing.txt");
        let err = format!("{:#}", Corpus::text(&missing, Level::Char, (0.8, 0.1, 0.1)).unwrap_err());
        assert!(err.contains("missing.txt"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn streams_segments_follow_the_sequence() {
        let tokens: Vec<u32> = (0..47).collect();
        let s = Streams::new(&tokens, 4).unwrap(); // len 11, 3 tokens dropped
        assert_eq!((s.len, s.batch), (11, 4));
        assert_eq!(s.at(0, 2), 22);
        assert_eq!(s.at(10, 3), 43);
        let bptt = 4; // 10 targets per stream: windows of 4, 4, 2
        assert_eq!(s.num_segments(bptt), 3);
        assert_eq!(s.num_targets(bptt), 40);
        let segs: Vec<Segment> = s.segments(bptt).collect();
        assert_eq!(segs.iter().map(|g| g.t_len).collect::<Vec<_>>(), vec![4, 4, 2]);
        let mut hits = vec![0; tokens.len()];
        let mut start = 0;
        for g in &segs {
            assert_eq!((g.inputs.len(), g.targets.len(), g.batch), (g.t_len * 4, g.t_len * 4, 4));
            for t in 0..g.t_len {
                for b in 0..4 {
                    let pos = b * 11 + start + t;
                    assert_eq!(g.inputs[t * 4 + b], tokens[pos]);
                    assert_eq!(g.targets[t * 4 + b], tokens[pos + 1]);
                    hits[g.targets[t * 4 + b] as usize] += 1;
                }
            }
            start += g.t_len;
        }
        // Every stream position 1..len is a target exactly once; nothing else is.
        for (i, &h) in hits.iter().enumerate() {
            let want = usize::from(i < 44 && i % 11 != 0);
            assert_eq!(h, want, "token {i}");
        }
        assert!(Streams::new(&tokens, 24).is_err());
        assert!(Streams::new(&tokens, 0).is_err());
        assert_eq!(s.segments(0).count(), 10);
    }

    /// Overlapping windows score every target once, reach back `bptt`
    /// steps where the stream allows, and say which state the next one
    /// starts from; with `stride == bptt` they are the plain segments.
    #[test]
    fn overlapping_windows_score_each_target_once() {
        let tokens: Vec<u32> = (0..3 * 24).collect();
        let s = Streams::new(&tokens, 3).unwrap(); // len 24: 23 targets per stream
        for (bptt, stride) in [(10, 5), (7, 3), (4, 1), (6, 6), (5, 4), (30, 7)] {
            let wins: Vec<Segment> = s.windows(bptt, stride).collect();
            assert_eq!(wins.len(), s.num_windows(stride), "bptt {bptt} stride {stride}");
            let mut scored = vec![0; 23];
            let mut start = 0; // stream position of the current window's first input
            for (k, w) in wins.iter().enumerate() {
                let what = format!("bptt {bptt} stride {stride} window {k}");
                assert!(w.t_len <= bptt && w.context < w.t_len && w.carry_at <= w.t_len, "{what}: {w:?}");
                assert_eq!(w.carry_in, start > 0, "{what}");
                for t in 0..w.t_len {
                    assert_eq!(w.inputs[t * 3 + 1], tokens[24 + start + t], "{what}: input {t}");
                    assert_eq!(w.targets[t * 3 + 1], tokens[24 + start + t + 1], "{what}: target {t}");
                    if t >= w.context {
                        scored[start + t] += 1;
                    }
                }
                // it scores targets k·stride.. and reaches back bptt − stride
                // steps before them, or to the stream's start
                assert_eq!(start + w.context, k * stride, "{what}");
                assert_eq!(w.context, (k * stride).min(bptt - stride), "{what}");
                start += w.carry_at;
            }
            assert!(scored.iter().all(|&n| n == 1), "bptt {bptt} stride {stride}: targets scored {scored:?}");
        }
        let plain: Vec<Segment> = s.segments(6).collect();
        assert_eq!(plain, s.windows(6, 6).collect::<Vec<_>>());
        assert!(plain.iter().all(|w| w.context == 0 && w.carry_at == w.t_len));
    }

    #[test]
    fn sampling_matches_softmax() {
        let mut rng = Rng::seed(11);
        let logits = [0.5f32, 2.0, -1.0, 1.0];
        assert_eq!(sample_index(&logits, 0.0, &mut rng), 1);
        let temp = 0.8;
        let e: Vec<f64> = logits.iter().map(|&l| (l as f64 / temp).exp()).collect();
        let z: f64 = e.iter().sum();
        let n = 20_000;
        let mut counts = [0usize; 4];
        for _ in 0..n {
            counts[sample_index(&logits, temp, &mut rng)] += 1;
        }
        for (i, (&c, &ei)) in counts.iter().zip(&e).enumerate() {
            let f = c as f64 / n as f64;
            assert!((f - ei / z).abs() < 0.01, "index {i}: {f} vs {}", ei / z);
        }
        // Huge logits: no overflow, and both outcomes still occur.
        let mut seen = [0usize; 2];
        for _ in 0..1000 {
            seen[sample_index(&[1000.0, 999.0], 1.0, &mut rng)] += 1;
        }
        assert!(seen[0] > 600 && seen[1] > 150, "{seen:?}");
        assert_eq!(sample_index(&[f32::NAN, 3.0, f32::NEG_INFINITY], 1.0, &mut rng), 1);
        assert_eq!(sample_index(&[], 1.0, &mut rng), 0);
    }
}
