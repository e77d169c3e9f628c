//! Adapter discovery and selection, the device, and the pipeline cache.

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// Vulkan, Metal and DX12 only: the GL backend would list lavapipe twice and
/// lacks the compute limits we rely on.
pub const BACKENDS: wgpu::Backends = wgpu::Backends::VULKAN.union(wgpu::Backends::METAL).union(wgpu::Backends::DX12);

pub const NO_ADAPTER_HELP: &str = "no Vulkan, Metal or DX12 adapter was found. On Debian/Ubuntu install Mesa's \
Vulkan drivers (software lavapipe included) with `sudo apt-get install mesa-vulkan-drivers libvulkan1`, \
or run on the CPU path with `--device cpu`";

pub fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = BACKENDS;
    wgpu::Instance::new(desc)
}

pub fn enumerate() -> Vec<wgpu::Adapter> {
    let inst = instance();
    pollster::block_on(inst.enumerate_adapters(BACKENDS))
}

/// What `longmem info` reports for one adapter.
#[derive(Clone, Debug, Serialize)]
pub struct AdapterReport {
    pub index: usize,
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub limits: LimitsReport,
    pub features: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LimitsReport {
    pub max_compute_workgroup_storage_size: u32,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroup_size_x: u32,
    pub max_compute_workgroups_per_dimension: u32,
    pub max_storage_buffers_per_shader_stage: u32,
}

pub fn device_type_name(t: wgpu::DeviceType) -> &'static str {
    match t {
        wgpu::DeviceType::DiscreteGpu => "discrete_gpu",
        wgpu::DeviceType::IntegratedGpu => "integrated_gpu",
        wgpu::DeviceType::VirtualGpu => "virtual_gpu",
        wgpu::DeviceType::Cpu => "cpu",
        wgpu::DeviceType::Other => "other",
    }
}

pub fn report(index: usize, adapter: &wgpu::Adapter) -> AdapterReport {
    let info = adapter.get_info();
    let l = adapter.limits();
    let f = adapter.features();
    let mut features = Vec::new();
    for (flag, name) in [
        (wgpu::Features::SHADER_F16, "shader-f16"),
        (wgpu::Features::SUBGROUP, "subgroups"),
        (wgpu::Features::TIMESTAMP_QUERY, "timestamp-query"),
        (wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES, "timestamp-query-inside-passes"),
    ] {
        if f.contains(flag) {
            features.push(name.to_string());
        }
    }
    AdapterReport {
        index,
        name: info.name.clone(),
        backend: format!("{:?}", info.backend).to_lowercase(),
        device_type: device_type_name(info.device_type).to_string(),
        driver: info.driver.clone(),
        driver_info: info.driver_info.clone(),
        limits: LimitsReport {
            max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
            max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
            max_buffer_size: l.max_buffer_size,
            max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
            max_compute_workgroup_size_x: l.max_compute_workgroup_size_x,
            max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
            max_storage_buffers_per_shader_stage: l.max_storage_buffers_per_shader_stage,
        },
        features,
    }
}

fn rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4, // lavapipe, SwiftShader
    }
}

/// Pick an adapter: by index or case-insensitive name substring when asked,
/// else hardware GPUs first, then software Vulkan.
pub fn pick(adapters: Vec<wgpu::Adapter>, wanted: Option<&str>) -> Result<Option<(usize, wgpu::Adapter)>> {
    if let Some(w) = wanted.filter(|w| !w.is_empty()) {
        if let Ok(i) = w.parse::<usize>() {
            let n = adapters.len();
            return match adapters.into_iter().nth(i) {
                Some(a) => Ok(Some((i, a))),
                None => bail!("--adapter {i}: there are only {n} adapters (see `longmem info`)"),
            };
        }
        let lw = w.to_lowercase();
        let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
        return match adapters.into_iter().enumerate().find(|(_, a)| a.get_info().name.to_lowercase().contains(&lw)) {
            Some(found) => Ok(Some(found)),
            None => bail!("--adapter '{w}' matches no adapter; available: {names:?}"),
        };
    }
    let mut best: Option<(u32, usize, wgpu::Adapter)> = None;
    for (i, a) in adapters.into_iter().enumerate() {
        let r = rank(a.get_info().device_type);
        if best.as_ref().is_none_or(|b| r < b.0) {
            best = Some((r, i, a));
        }
    }
    Ok(best.map(|(_, i, a)| (i, a)))
}

pub struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    Uniform,
    Read,
    ReadWrite,
}

pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    pub index: usize,
    kernels: Mutex<HashMap<String, Arc<Kernel>>>,
    errors: Arc<Mutex<Vec<String>>>,
    /// bytes of storage buffers created through `ops::storage` so far (for
    /// `longmem bench`'s memory figures)
    pub allocated: AtomicU64,
    pub(crate) timer: Mutex<Option<super::timer::PassTimer>>,
}

impl GpuContext {
    pub fn new(index: usize, adapter: wgpu::Adapter) -> Result<Self> {
        let info = adapter.get_info();
        // Ask for the adapter's own limits: wgpu's defaults are far smaller.
        let limits = adapter.limits();
        let desc = wgpu::DeviceDescriptor {
            label: Some("longmem"),
            // timestamp queries, where present, let `longmem bench` time kernels on the device
            required_features: adapter.features() & wgpu::Features::TIMESTAMP_QUERY,
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .with_context(|| format!("could not open a device on adapter '{}'", info.name))?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock().unwrap().push(e.to_string());
        }));
        Ok(GpuContext {
            device,
            queue,
            info,
            limits,
            features: adapter.features(),
            index,
            kernels: Mutex::new(HashMap::new()),
            errors,
            allocated: AtomicU64::new(0),
            timer: Mutex::new(None),
        })
    }

    /// Open the adapter `wanted` names, or the best one; None if there is none.
    pub fn open(wanted: Option<&str>) -> Result<Option<Self>> {
        match pick(enumerate(), wanted)? {
            Some((i, a)) => Ok(Some(Self::new(i, a)?)),
            None => Ok(None),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{} ({}, {}, {})",
            self.info.name,
            format!("{:?}", self.info.backend).to_lowercase(),
            device_type_name(self.info.device_type),
            self.info.driver
        )
    }

    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Errors wgpu reported since the last call (validation, out of memory).
    pub fn check_errors(&self) -> Result<()> {
        let mut e = self.errors.lock().unwrap();
        if e.is_empty() {
            return Ok(());
        }
        let msg = e.join("\n");
        e.clear();
        Err(anyhow!("the GPU reported an error: {msg}"))
    }

    /// A compute pipeline for `shader`'s `entry` specialised with `consts`,
    /// cached by (shader, entry, constants).
    pub fn kernel(
        &self,
        shader: &super::shaders::ShaderSrc,
        entry: &str,
        consts: &[(&str, u32)],
        bindings: &[Binding],
    ) -> Result<Arc<Kernel>> {
        let key = format!("{}:{entry}:{consts:?}", shader.name);
        if let Some(k) = self.kernels.lock().unwrap().get(&key) {
            return Ok(k.clone());
        }
        let src = shader.specialise(consts);
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(shader.name),
            source: wgpu::ShaderSource::Wgsl(src.into()),
        });
        let entries: Vec<wgpu::BindGroupLayoutEntry> = bindings
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: match b {
                    Binding::Uniform => wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    Binding::Read | Binding::ReadWrite => wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage { read_only: *b == Binding::Read },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                },
                count: None,
            })
            .collect();
        let layout = self.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(shader.name), entries: &entries });
        let pl = self.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(shader.name),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&key),
            layout: Some(&pl),
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        });
        if let Some(err) = pollster::block_on(scope.pop()) {
            bail!("shader {} entry {entry} failed to build: {err}", shader.name);
        }
        let k = Arc::new(Kernel { pipeline, layout });
        self.kernels.lock().unwrap().insert(key, k.clone());
        Ok(k)
    }
}
