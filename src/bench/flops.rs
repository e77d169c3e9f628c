//! Counted floating-point work of one timed run of a case, from the model's
//! equations (a multiply-add is 2 flops; elementwise work is counted at a
//! few flops per element, transcendental functions as one). These are
//! nominal counts of the algorithm, the same for every device and peer, so
//! GFLOP/s figures compare across them.

use super::{scrn_context, Case, Mode, INPUT_WIDTH, OUTPUT_WIDTH};
use anyhow::{bail, Result};

/// Forward flops per token (one batch row, one step) of the recurrence,
/// the input projection and the readout.
pub fn forward_per_token(model: &str, hidden: usize) -> Result<f64> {
    let (h, i, o) = (hidden as f64, INPUT_WIDTH as f64, OUTPUT_WIDTH as f64);
    let readout = 2.0 * o * h + o;
    Ok(match model {
        // pre = W_in x + W h + b; tanh
        "rnn" | "linear" => 2.0 * h * (i + h) + 2.0 * h + readout,
        // four gates from [x; h], three sigmoids, two tanh, c and h updates
        "lstm" => 2.0 * 4.0 * h * (i + h) + 4.0 * h + 10.0 * h + readout,
        // three gates, r ⊙ (U h), the interpolation
        "gru" => 2.0 * 3.0 * h * (i + h) + 3.0 * h + 10.0 * h + readout,
        "scrn" => {
            let m = scrn_context(hidden) as f64;
            // s = (1-α) B x + α s; h = σ(P s + A x + R h); y = U h + V s
            2.0 * m * i + 3.0 * m + 2.0 * h * (m + i + h) + 2.0 * h + 2.0 * o * (h + m) + o
        }
        "urnn" => {
            // complex state of size N: two FFTs (5 N log2 N each), two
            // reflections (complex dot and update: 16 N each), three diagonals
            // (6 N each), modReLU (~8 N), the complex input projection from
            // real x and the readout on [Re h; Im h]
            let lg = h.log2();
            2.0 * 5.0 * h * lg + 2.0 * 16.0 * h + 3.0 * 6.0 * h + 8.0 * h + 2.0 * (2.0 * h) * i + 2.0 * o * (2.0 * h) + o
        }
        "warp" => {
            // θ_t = A θ + B Δ with D = the root's weights (width h, one
            // hidden layer, input τ); the root decodes each row (each weight
            // one multiply-add) and carries its own output layer
            let d = 2.0 * h + h * o + o;
            2.0 * d * d + 2.0 * d * (i + 1.0) + 2.0 * d + h
        }
        other => bail!("no flop count for model '{other}'"),
    })
}

/// Flops of one Lyapunov step of one trajectory of a tanh RNN with N units
/// and k tangent vectors: the state step, J·Q = diag(1 − h²) W Q, and a
/// Householder QR of the N×k matrix with Q formed explicitly
/// (2·(2Nk² − 2k³/3)).
pub fn lyapunov_per_step(n: usize, k: usize) -> f64 {
    let (n, k, i) = (n as f64, k as f64, INPUT_WIDTH as f64);
    let state = 2.0 * n * (i + n) + 2.0 * n;
    let tangent = 2.0 * n * n * k + n * k;
    let qr = 2.0 * (2.0 * n * k * k - 2.0 * k * k * k / 3.0);
    state + tangent + qr
}

/// Flops of one timed run of `case` (`params`: the model's parameter count).
/// A training step is the forward, twice the forward's products for the
/// backward (input and weight gradients), the MSE loss and Adam (about 12
/// flops per parameter).
pub fn case_flops(case: &Case, params: usize) -> Result<f64> {
    let tokens = (case.batch * case.seq_len) as f64;
    let loss = 3.0 * OUTPUT_WIDTH as f64;
    Ok(match case.mode {
        Mode::Forward => tokens * (forward_per_token(&case.model, case.hidden)? + loss),
        Mode::Train => tokens * (3.0 * forward_per_token(&case.model, case.hidden)? + 2.0 * loss) + 12.0 * params as f64,
        Mode::Lyapunov => tokens * lyapunov_per_step(case.hidden, case.hidden),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_the_equations() {
        // tanh RNN, H = 128: 2·128·(32 + 128) + 256 + 2·32·128 + 32
        assert_eq!(forward_per_token("rnn", 128).unwrap(), 40960.0 + 256.0 + 8192.0 + 32.0);
        // the LSTM's products are four times the RNN's recurrence
        let lstm = forward_per_token("lstm", 256).unwrap();
        let rnn = forward_per_token("rnn", 256).unwrap();
        assert!(lstm > 3.5 * rnn && lstm < 4.0 * rnn, "{lstm} vs {rnn}");
        assert!(forward_per_token("warp9", 8).is_err());
        // WARP, H = 8: D = 2·8 + 8·32 + 32 = 304
        assert_eq!(forward_per_token("warp", 8).unwrap(), 2.0 * 304.0 * 304.0 + 2.0 * 304.0 * 33.0 + 2.0 * 304.0 + 8.0);
        let c = Case { model: "rnn".into(), hidden: 128, batch: 2, seq_len: 3, mode: Mode::Train };
        let f = case_flops(&c, 1000).unwrap();
        assert_eq!(f, 6.0 * (3.0 * rnn_f(128) + 192.0) + 12_000.0);
        // k = N: the QR is 8/3 N³ flops
        let n = 64.0;
        let q = lyapunov_per_step(64, 64) - (2.0 * n * (32.0 + n) + 2.0 * n) - (2.0 * n * n * n + n * n);
        assert!((q - 8.0 / 3.0 * n * n * n).abs() < 1e-6);
    }

    fn rnn_f(h: usize) -> f64 {
        forward_per_token("rnn", h).unwrap()
    }
}
