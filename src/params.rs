//! Named views into one flat parameter buffer.
//!
//! Every model family lays its parameters out as one flat f32 vector; the
//! same layout is used on the CPU, on the GPU (one storage buffer), for
//! gradients and optimizer state, and in checkpoints (one tensor per view).

use anyhow::{bail, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamView {
    pub name: String,
    pub shape: Vec<usize>,
    pub offset: usize,
}

impl ParamView {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParamLayout {
    views: Vec<ParamView>,
    len: usize,
}

impl ParamLayout {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append a tensor; returns its offset.
    pub fn push(&mut self, name: &str, shape: &[usize]) -> usize {
        assert!(self.views.iter().all(|v| v.name != name), "duplicate parameter {name}");
        let offset = self.len;
        let view = ParamView { name: name.to_string(), shape: shape.to_vec(), offset };
        self.len += view.len();
        self.views.push(view);
        offset
    }

    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn views(&self) -> &[ParamView] {
        &self.views
    }

    pub fn get(&self, name: &str) -> Result<&ParamView> {
        match self.views.iter().find(|v| v.name == name) {
            Some(v) => Ok(v),
            None => bail!("no parameter named '{name}' in this model"),
        }
    }

    /// Offset of a view; panics only on a programming error inside a family.
    pub fn offset(&self, name: &str) -> usize {
        self.get(name).expect("family asked for its own parameter").offset
    }
}
