//! Simulated dynamical systems for forecasting (WARP's physics tasks): a
//! damped mass–spring system and a Lotka–Volterra predator–prey system,
//! integrated with RK4 in f64 from seeded random parameters and initial
//! states, sampled every `DT`. Each trajectory is `lookback + horizon` rows
//! of the state (raw units, not standardised, so WARP-Phys's parameters
//! keep their meaning). Training, validation and test trajectories come
//! from distinct seed streams.

use crate::rng::Rng;
use anyhow::{bail, Result};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

/// Time between rows.
pub const DT: f64 = 0.1;
/// RK4 sub-steps per row.
const SUBSTEPS: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum System {
    /// x'' = −k x − c x' (unit mass): state (x, v), k ∈ [0.5, 2], c ∈ [0.05, 0.5]
    Msd,
    /// x' = αx − βxy, y' = δxy − γy: state (x, y), α, γ ∈ [0.5, 1.5], β, δ ∈ [0.5, 1]
    Lotka,
}

impl System {
    pub fn channels(self) -> usize {
        2
    }

    pub fn name(self) -> &'static str {
        match self {
            System::Msd => "mass-spring-damper",
            System::Lotka => "Lotka-Volterra",
        }
    }

    /// The parameters of one trajectory, drawn from their ranges.
    pub fn draw_params(self, rng: &mut Rng) -> Vec<f64> {
        match self {
            System::Msd => vec![rng.uniform_in(0.5, 2.0), rng.uniform_in(0.05, 0.5)],
            System::Lotka => vec![rng.uniform_in(0.5, 1.5), rng.uniform_in(0.5, 1.0), rng.uniform_in(0.5, 1.0), rng.uniform_in(0.5, 1.5)],
        }
    }

    fn draw_state(self, rng: &mut Rng) -> [f64; 2] {
        match self {
            System::Msd => [rng.uniform_in(-1.0, 1.0), rng.uniform_in(-1.0, 1.0)],
            System::Lotka => [rng.uniform_in(0.5, 2.0), rng.uniform_in(0.5, 2.0)],
        }
    }

    /// The vector field at state `s`.
    pub fn field(self, p: &[f64], s: [f64; 2]) -> [f64; 2] {
        match self {
            System::Msd => [s[1], -p[0] * s[0] - p[1] * s[1]],
            System::Lotka => [p[0] * s[0] - p[1] * s[0] * s[1], p[2] * s[0] * s[1] - p[3] * s[1]],
        }
    }

    /// `rows` states DT apart from `s0`.
    pub fn simulate(self, p: &[f64], s0: [f64; 2], rows: usize) -> Array2<f32> {
        let mut out = Array2::zeros((rows, 2));
        let mut s = s0;
        let h = DT / SUBSTEPS as f64;
        let add = |a: [f64; 2], b: [f64; 2], f: f64| [a[0] + f * b[0], a[1] + f * b[1]];
        for r in 0..rows {
            out[[r, 0]] = s[0] as f32;
            out[[r, 1]] = s[1] as f32;
            for _ in 0..SUBSTEPS {
                let k1 = self.field(p, s);
                let k2 = self.field(p, add(s, k1, h / 2.0));
                let k3 = self.field(p, add(s, k2, h / 2.0));
                let k4 = self.field(p, add(s, k3, h));
                s = [s[0] + h / 6.0 * (k1[0] + 2.0 * k2[0] + 2.0 * k3[0] + k4[0]), s[1] + h / 6.0 * (k1[1] + 2.0 * k2[1] + 2.0 * k3[1] + k4[1])];
            }
        }
        out
    }
}

/// Which trajectories: the split picks the seed stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Valid,
    Test,
}

/// `count` trajectories of `rows` rows, with their parameters.
#[allow(clippy::type_complexity)]
pub fn trajectories(system: System, split: Split, count: usize, rows: usize, seed: u64) -> Result<(Vec<Array2<f32>>, Vec<Vec<f64>>)> {
    if count == 0 || rows < 2 {
        bail!("simulated data needs at least one trajectory of two rows");
    }
    let purpose = match split {
        Split::Train => 0xD1,
        Split::Valid => 0xD2,
        Split::Test => 0xD3,
    };
    let mut rng = Rng::stream(seed, purpose);
    let mut series = Vec::with_capacity(count);
    let mut params = Vec::with_capacity(count);
    for _ in 0..count {
        let p = system.draw_params(&mut rng);
        let s0 = system.draw_state(&mut rng);
        series.push(system.simulate(&p, s0, rows));
        params.push(p);
    }
    Ok((series, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undamped_spring_keeps_its_energy_and_damped_loses_it() {
        let s = System::Msd.simulate(&[1.0, 0.0], [1.0, 0.0], 64);
        // x(t) = cos t for k = 1
        for r in 0..64 {
            let t = r as f64 * DT;
            assert!((s[[r, 0]] as f64 - t.cos()).abs() < 1e-5, "row {r}");
        }
        let d = System::Msd.simulate(&[1.0, 0.3], [1.0, 0.0], 200);
        let e = |r: usize| (d[[r, 0]] as f64).powi(2) + (d[[r, 1]] as f64).powi(2);
        assert!(e(199) < 0.01 * e(0));
    }

    #[test]
    fn lotka_volterra_conserves_its_invariant() {
        let p = [1.0, 0.7, 0.8, 1.2];
        let s = System::Lotka.simulate(&p, [1.5, 0.5], 300);
        // V = δx − γ ln x + βy − α ln y is constant along a trajectory
        let v = |r: usize| {
            let (x, y) = (s[[r, 0]] as f64, s[[r, 1]] as f64);
            p[2] * x - p[3] * x.ln() + p[1] * y - p[0] * y.ln()
        };
        for r in [100, 200, 299] {
            assert!((v(r) - v(0)).abs() < 1e-5, "V drifts by {}", v(r) - v(0));
        }
    }

    #[test]
    fn splits_draw_distinct_trajectories() {
        let (a, _) = trajectories(System::Msd, Split::Train, 3, 10, 1).unwrap();
        let (b, _) = trajectories(System::Msd, Split::Test, 3, 10, 1).unwrap();
        let (c, _) = trajectories(System::Msd, Split::Train, 3, 10, 1).unwrap();
        assert_eq!(a, c);
        assert_ne!(a[0], b[0]);
    }
}
