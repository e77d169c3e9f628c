//! Checkpoints: one safetensors file with every parameter under its stable
//! name (f32, the layout's shape), the optimizer state and, in the header's
//! metadata, the model, the step and the data RNG, so a resumed run
//! continues exactly. Written to a temporary file and renamed into place.

use crate::models::{Dims, Model, ModelKind};
use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

pub const FORMAT: &str = "longmem-checkpoint-1";

#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub model: ModelKind,
    pub dims: Dims,
    pub bias: bool,
    pub step: u64,
    pub params: Vec<f32>,
    pub optim_m: Vec<f32>,
    pub optim_v: Vec<f32>,
    /// the flossing updates' own optimizer moments (`--floss-optimizer
    /// separate`); empty when flossing shares the training optimizer
    pub floss_m: Vec<f32>,
    pub floss_v: Vec<f32>,
    /// flossing updates made so far (before training and in bursts); None
    /// in checkpoints from before it was recorded
    pub floss_updates: Option<u64>,
    pub data_rng: [u64; 4],
    /// training loss summed over the steps since the last metrics line, and
    /// their count, so a resumed run logs exactly what an unbroken one does
    pub log_acc: (f64, u64),
}

fn bytes(v: &[f32]) -> &[u8] {
    bytemuck::cast_slice(v)
}

impl Checkpoint {
    pub fn save(&self, model: &Model, path: &Path) -> Result<()> {
        let layout = model.layout();
        let mut tensors: Vec<(String, TensorView)> = Vec::new();
        for v in layout.views() {
            tensors.push((v.name.clone(), TensorView::new(Dtype::F32, v.shape.clone(), bytes(&self.params[v.range()]))?));
        }
        let n = layout.len();
        tensors.push(("optim.m".into(), TensorView::new(Dtype::F32, vec![n], bytes(&self.optim_m))?));
        tensors.push(("optim.v".into(), TensorView::new(Dtype::F32, vec![n], bytes(&self.optim_v))?));
        if !self.floss_m.is_empty() {
            tensors.push(("floss.m".into(), TensorView::new(Dtype::F32, vec![n], bytes(&self.floss_m))?));
            tensors.push(("floss.v".into(), TensorView::new(Dtype::F32, vec![n], bytes(&self.floss_v))?));
        }
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), FORMAT.to_string());
        meta.insert("model".to_string(), self.model.name().to_string());
        meta.insert("input".to_string(), self.dims.input.to_string());
        meta.insert("hidden".to_string(), self.dims.hidden.to_string());
        meta.insert("output".to_string(), self.dims.output.to_string());
        meta.insert("bias".to_string(), self.bias.to_string());
        meta.insert("step".to_string(), self.step.to_string());
        if let Some(n) = self.floss_updates {
            meta.insert("floss_updates".to_string(), n.to_string());
        }
        meta.insert("data_rng".to_string(), self.data_rng.map(|x| x.to_string()).join(","));
        // {:?} prints the shortest string that parses back to the same f64
        meta.insert("log_acc".to_string(), format!("{:?},{}", self.log_acc.0, self.log_acc.1));
        let data = canonical_header(safetensors::serialize(tensors, Some(meta))?)?;
        write_atomic(path, &data)
    }

    /// Load a checkpoint and check it belongs to `model`.
    pub fn load(model: &Model, path: &Path) -> Result<Self> {
        let data = std::fs::read(path).with_context(|| format!("cannot read checkpoint {}", path.display()))?;
        Self::parse(model, &data).with_context(|| format!("checkpoint {} is unusable", path.display()))
    }

    pub fn parse(model: &Model, data: &[u8]) -> Result<Self> {
        let st = SafeTensors::deserialize(data).map_err(|e| anyhow::anyhow!("not a valid safetensors file: {e}"))?;
        let (_, header) = SafeTensors::read_metadata(data).map_err(|e| anyhow::anyhow!("{e}"))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let get = |k: &str| meta.get(k).with_context(|| format!("metadata field '{k}' is missing"));
        if get("format")? != FORMAT {
            bail!("unknown checkpoint format '{}'", get("format")?);
        }
        let kind = ModelKind::parse(get("model")?)?;
        let num = |k: &str| -> Result<usize> { get(k)?.parse().with_context(|| format!("metadata field '{k}' is not a number")) };
        let dims = Dims { input: num("input")?, hidden: num("hidden")?, output: num("output")? };
        // checkpoints from before the bias option all had biases
        let bias = meta.get("bias").map(|b| b == "true").unwrap_or(true);
        if bias != model.has_bias() {
            bail!("it holds a model {} biases but this run's model has {}", if bias { "with" } else { "without" }, if model.has_bias() { "them" } else { "none" });
        }
        if kind != model.kind() || dims != model.dims() {
            let d = model.dims();
            bail!(
                "it holds a {} model (input {}, hidden {}, output {}) but this run is a {} model (input {}, hidden {}, output {})",
                kind.name(),
                dims.input,
                dims.hidden,
                dims.output,
                model.kind().name(),
                d.input,
                d.hidden,
                d.output
            );
        }
        let step: u64 = get("step")?.parse().context("metadata field 'step' is not a number")?;
        let rng: Vec<u64> = get("data_rng")?.split(',').map(|s| s.parse()).collect::<Result<_, _>>().context("bad data_rng")?;
        let data_rng: [u64; 4] = rng.try_into().map_err(|_| anyhow::anyhow!("data_rng must have 4 words"))?;
        let log_acc = match meta.get("log_acc").map(|s| s.split_once(',')) {
            Some(Some((a, n))) => (a.parse().context("bad log_acc")?, n.parse().context("bad log_acc")?),
            _ => (0.0, 0),
        };
        let floss_updates = match meta.get("floss_updates") {
            Some(s) => Some(s.parse().context("metadata field 'floss_updates' is not a number")?),
            None => None,
        };
        let layout = model.layout();
        let read = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let t = st.tensor(name).map_err(|_| anyhow::anyhow!("tensor '{name}' is missing"))?;
            if t.dtype() != Dtype::F32 || t.shape() != shape {
                bail!("tensor '{name}' is {:?} {:?}, expected F32 {:?}", t.dtype(), t.shape(), shape);
            }
            Ok(t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        };
        let mut params = vec![0f32; layout.len()];
        for v in layout.views() {
            params[v.range()].copy_from_slice(&read(&v.name, &v.shape)?);
        }
        if let Some(i) = params.iter().position(|x| !x.is_finite()) {
            bail!("parameter {i} is not finite");
        }
        let n = layout.len();
        let (floss_m, floss_v) = if st.names().contains(&"floss.m") { (read("floss.m", &[n])?, read("floss.v", &[n])?) } else { (Vec::new(), Vec::new()) };
        Ok(Checkpoint {
            model: kind,
            dims,
            bias,
            step,
            params,
            optim_m: read("optim.m", &[n])?,
            optim_v: read("optim.v", &[n])?,
            floss_m,
            floss_v,
            floss_updates,
            data_rng,
            log_acc,
        })
    }
}

/// safetensors writes its metadata map in hash order; rewrite the JSON
/// header with sorted keys (same length, same offsets) so identical
/// checkpoints are identical files.
fn canonical_header(mut data: Vec<u8>) -> Result<Vec<u8>> {
    let n = u64::from_le_bytes(data[..8].try_into().expect("8 bytes")) as usize;
    let header: serde_json::Value = serde_json::from_slice(&data[8..8 + n])?;
    let mut text = serde_json::to_string(&header)?.into_bytes();
    if text.len() > n {
        bail!("internal error: canonical checkpoint header grew");
    }
    text.resize(n, b' ');
    data[8..8 + n].copy_from_slice(&text);
    Ok(data)
}

/// Write to `path.tmp`, flush to disk, then rename over `path`.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot move {} into place", path.display()))?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{InitConfig, ModelKind};
    use crate::rng::Rng;

    fn model(h: usize) -> Model {
        Model::new(ModelKind::Rnn, Dims { input: 2, hidden: h, output: 1 }).unwrap()
    }

    #[test]
    fn round_trip_and_rejections() {
        let m = model(5);
        let p = m.init(&InitConfig::default(), &mut Rng::seed(1));
        let n = p.len();
        let ck = Checkpoint {
            model: ModelKind::Rnn,
            dims: m.dims(),
            bias: true,
            step: 42,
            params: p,
            optim_m: vec![0.5; n],
            optim_v: vec![0.25; n],
            floss_m: Vec::new(),
            floss_v: Vec::new(),
            floss_updates: None,
            data_rng: [1, 2, 3, u64::MAX],
            log_acc: (0.1 + 0.2, 7),
        };
        let dir = std::env::temp_dir().join(format!("longmem-ck-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("checkpoint.safetensors");
        ck.save(&m, &path).unwrap();
        assert_eq!(Checkpoint::load(&m, &path).unwrap(), ck);
        // with the flossing optimizer's own moments
        let ck2 = Checkpoint { floss_m: vec![-1.5; n], floss_v: vec![2.0; n], floss_updates: Some(500), ..ck.clone() };
        ck2.save(&m, &path).unwrap();
        assert_eq!(Checkpoint::load(&m, &path).unwrap(), ck2);
        ck.save(&m, &path).unwrap();
        // another model
        let e = Checkpoint::load(&model(6), &path).unwrap_err();
        assert!(format!("{e:#}").contains("hidden 5"), "{e:#}");
        // a corrupt file
        let mut data = std::fs::read(&path).unwrap();
        data.truncate(data.len() / 2);
        std::fs::write(&path, &data).unwrap();
        assert!(format!("{:#}", Checkpoint::load(&m, &path).unwrap_err()).contains("unusable"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
