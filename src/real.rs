//! The scalar type of the CPU reference: f32 for training, f64 for gradient checks.

pub trait Real:
    num_traits::Float
    + ndarray::LinalgScalar
    + ndarray::ScalarOperand
    + std::fmt::Debug
    + std::fmt::Display
    + std::iter::Sum
    + Send
    + Sync
    + 'static
{
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn from_f32(x: f32) -> Self {
        Self::from_f64(x as f64)
    }
    fn to_f32(self) -> f32 {
        self.to_f64() as f32
    }
}

impl Real for f32 {
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Real for f64 {
    fn from_f64(x: f64) -> Self {
        x
    }
    fn to_f64(self) -> f64 {
        self
    }
}

pub fn cast_vec<A: Real, B: Real>(v: &[A]) -> Vec<B> {
    v.iter().map(|&x| B::from_f64(x.to_f64())).collect()
}
