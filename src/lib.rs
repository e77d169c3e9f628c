//! longmem: recurrent networks with long memory, trained on any GPU through
//! wgpu compute shaders, with a CPU reference path that checks every result.

pub mod cpu;
pub mod cpu_fast;
pub mod data;
pub mod gpu;
pub mod lyapunov;
pub mod models;
pub mod params;
pub mod real;
pub mod rng;
pub mod rundir;
pub mod tasks;
pub mod train;
pub mod config;
pub mod device;
pub mod plot;
pub mod analysis;
pub mod bench;
