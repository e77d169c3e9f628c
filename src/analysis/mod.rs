//! Post-hoc analysis of trained parameters.
//!
//! [`eigs`] follows the spectrum of a linear RNN's recurrent matrix W during
//! training (how gradient descent grows an outlier eigenvalue, or a complex
//! pair, toward a target timescale) and how well the input and readout
//! weights align with the leading eigenvectors; records are kept as JSON lines.

pub mod eigs;
