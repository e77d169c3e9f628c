//! Training: losses, optimizers, the two backends, the loop, checkpoints.

pub mod backend;
pub mod cpu;
pub mod floss;
pub mod gpu;
pub mod loss;
pub mod optim;

pub use backend::{Backend, StepOut};
pub mod checkpoint;
pub mod metrics;
pub mod run;
pub mod lm;
pub mod mnist;
pub mod forecast;
