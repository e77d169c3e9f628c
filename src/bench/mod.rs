//! `longmem bench`: a fixed, versioned suite of throughput cases, run on the
//! CPU path or a GPU adapter, written as bench.json (+ bench.md, bench.svg)
//! in a schema a peer (benches/peers/torch_bench.py) writes too, so
//! `longmem bench --compare A.json B.json` sets runs side by side.
//!
//! Every case trains (or runs forward) a model with input width 32, a linear
//! readout to 32 outputs, MSE loss and Adam, on random normal data; the
//! Lyapunov cases propagate k = N tangent vectors of a tanh RNN with a QR
//! every step.

pub mod alloc;
pub mod ceilings;
pub mod flops;
pub mod report;
pub mod run;

use crate::models::ModelKind;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// Bumped whenever the cases or what a figure means change.
pub const SUITE_VERSION: u32 = 1;
/// The report format; peers write the same.
pub const SCHEMA: &str = "longmem-bench/1";
pub const INPUT_WIDTH: usize = 32;
pub const OUTPUT_WIDTH: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Forward,
    Train,
    Lyapunov,
}

impl Mode {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "forward" => Mode::Forward,
            "train" => Mode::Train,
            "lyapunov" => Mode::Lyapunov,
            other => bail!("unknown bench mode '{other}': expected forward, train or lyapunov"),
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Mode::Forward => "forward",
            Mode::Train => "train",
            Mode::Lyapunov => "lyapunov",
        }
    }
}

/// One case: which model, its size, the batch and sequence length, and what is timed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Case {
    pub model: String,
    pub hidden: usize,
    pub batch: usize,
    pub seq_len: usize,
    pub mode: Mode,
}

impl Case {
    pub fn label(&self) -> String {
        format!("{} H={} B={} T={} {}", self.model, self.hidden, self.batch, self.seq_len, self.mode.name())
    }
}

/// Families the suite covers, in report order (every family present in the engine).
pub const SUITE_MODELS: [ModelKind; 5] = [ModelKind::Rnn, ModelKind::Lstm, ModelKind::Gru, ModelKind::Scrn, ModelKind::Urnn];

/// Which cases to run: the cross product of the lists, per mode.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    pub models: Vec<ModelKind>,
    pub hidden: Vec<usize>,
    pub batch: Vec<usize>,
    pub seq_len: Vec<usize>,
    pub modes: Vec<Mode>,
    /// state sizes of the Lyapunov cases (a tanh RNN)
    pub lyapunov_hidden: Vec<usize>,
    /// trajectories of the Lyapunov cases
    pub lyapunov_batch: Vec<usize>,
}

impl Selection {
    /// Suite version 1 in full.
    pub fn full() -> Self {
        Selection {
            models: SUITE_MODELS.to_vec(),
            hidden: vec![128, 256, 512, 1024],
            batch: vec![1, 32, 256],
            seq_len: vec![256, 1024],
            modes: vec![Mode::Forward, Mode::Train, Mode::Lyapunov],
            lyapunov_hidden: vec![128, 512],
            lyapunov_batch: vec![1, 32],
        }
    }

    /// About a minute on a 2-core CPU: the tanh RNN and the LSTM at H = 128,
    /// B = 32, T = 256, and one Lyapunov case.
    pub fn quick() -> Self {
        Selection {
            models: vec![ModelKind::Rnn, ModelKind::Lstm],
            hidden: vec![128],
            batch: vec![32],
            seq_len: vec![256],
            modes: vec![Mode::Forward, Mode::Train, Mode::Lyapunov],
            lyapunov_hidden: vec![128],
            lyapunov_batch: vec![1],
        }
    }

    pub fn cases(&self) -> Vec<Case> {
        let mut out = Vec::new();
        for &mode in &self.modes {
            if mode == Mode::Lyapunov {
                for &n in &self.lyapunov_hidden {
                    for &b in &self.lyapunov_batch {
                        for &t in &self.seq_len {
                            out.push(Case { model: "rnn".into(), hidden: n, batch: b, seq_len: t, mode });
                        }
                    }
                }
                continue;
            }
            for &m in &self.models {
                for &h in &self.hidden {
                    for &b in &self.batch {
                        for &t in &self.seq_len {
                            out.push(Case { model: m.name().into(), hidden: h, batch: b, seq_len: t, mode });
                        }
                    }
                }
            }
        }
        out
    }

    pub fn validate(&self) -> Result<()> {
        let lists: [(&str, &Vec<usize>); 5] = [
            ("--hidden", &self.hidden),
            ("--batch", &self.batch),
            ("--seq-len", &self.seq_len),
            ("--lyapunov-hidden", &self.lyapunov_hidden),
            ("--lyapunov-batch", &self.lyapunov_batch),
        ];
        for (flag, l) in lists {
            if l.contains(&0) {
                bail!("{flag}: sizes must be positive");
            }
        }
        if self.models.contains(&ModelKind::Urnn) {
            if let Some(h) = self.hidden.iter().find(|h| !h.is_power_of_two()) {
                bail!("--hidden {h}: the uRNN needs a power of two (drop urnn from --models or pick powers of two)");
            }
        }
        if self.cases().is_empty() {
            bail!("the selection has no cases");
        }
        Ok(())
    }

    /// Whether every case is one of suite version 1's.
    pub fn within_suite(&self) -> bool {
        let full = Selection::full().cases();
        self.cases().iter().all(|c| full.contains(c))
    }
}

/// SCRN cases use a quarter of the hidden width as slow context units.
pub fn scrn_context(hidden: usize) -> usize {
    (hidden / 4).max(1)
}

/// Parse a comma-separated list.
pub fn parse_list<T>(s: &str, one: impl Fn(&str) -> Result<T>) -> Result<Vec<T>> {
    s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(one).collect()
}

pub fn parse_sizes(flag: &str, s: &str) -> Result<Vec<usize>> {
    parse_list(s, |p| p.parse::<usize>().map_err(|_| anyhow::anyhow!("{flag}: '{p}' is not a size")))
}
