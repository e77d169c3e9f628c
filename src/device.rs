//! `--device auto|gpu|cpu`: which engine a command runs on.

use crate::gpu::context::NO_ADAPTER_HELP;
use crate::gpu::GpuContext;
use anyhow::{bail, Result};
use std::sync::Arc;

pub enum Engine {
    Cpu,
    Gpu(Arc<GpuContext>),
}

impl Engine {
    /// As [`Engine::describe`], naming the CPU path that trains `model`
    /// (the fast f32 one where the family has it).
    pub fn describe_for(&self, model: &crate::models::Model) -> String {
        match self {
            Engine::Cpu if crate::cpu_fast::supports(model) => "cpu (fast f32 path)".into(),
            _ => self.describe(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Engine::Cpu => "cpu (reference path)".into(),
            Engine::Gpu(c) => {
                let kind = if c.is_software() { "software Vulkan" } else { "GPU" };
                format!("{kind}: {}", c.describe())
            }
        }
    }
}

/// Resolve the device choice; `adapter` falls back to env LONGMEM_ADAPTER.
/// `auto` takes a hardware GPU, else a software Vulkan adapter, else the CPU.
pub fn resolve(device: &str, adapter: Option<&str>) -> Result<Engine> {
    let env = std::env::var("LONGMEM_ADAPTER").ok();
    let adapter = adapter.or(env.as_deref());
    match device {
        "cpu" => Ok(Engine::Cpu),
        "gpu" => match GpuContext::open(adapter)? {
            Some(c) => Ok(Engine::Gpu(Arc::new(c))),
            None => bail!("--device gpu: {NO_ADAPTER_HELP}"),
        },
        "auto" => match GpuContext::open(adapter)? {
            Some(c) => Ok(Engine::Gpu(Arc::new(c))),
            None => Ok(Engine::Cpu),
        },
        other => bail!("unknown device '{other}': expected auto, gpu or cpu"),
    }
}
