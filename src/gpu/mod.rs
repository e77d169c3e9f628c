//! The GPU side: adapters and device, shaders, shared kernels.

pub mod context;
pub mod ops;
pub mod shaders;
pub mod testing;
pub mod timer;

pub use context::GpuContext;
