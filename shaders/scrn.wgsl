// SCRN forward, the context units. states (T + 1, B, S = H + M) hold [h; s];
// pre (T·B, S) = [A x + b_h | B x + b_s]. s_t = (1 − α) pre_s + α s_{t-1},
// one invocation per (b, m) looping over time: the context units do not
// depend on h. Then (scrn/gpu.rs) a GEMM adds P s_t (or P s_{t-1}) into
// pre_h, and the Elman scan (rnn_forward.wgsl, sigmoid, row stride S) runs
// the fast layer h_t = σ(pre_h + R h_{t-1}).

struct Scrn {
    batch: u32, hidden: u32, ctx: u32, t0: u32,
    steps: u32, t_total: u32, alpha_off: u32, alpha_mode: u32,
    code_form: u32, alpha_fixed: f32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> s: Scrn;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read> pre: array<f32>;
@group(0) @binding(3) var<storage, read_write> states: array<f32>;

fn alpha(m: u32) -> f32 {
    if (s.alpha_mode == 1u) {
        return params[s.alpha_off];
    }
    if (s.alpha_mode == 2u) {
        return params[s.alpha_off + m];
    }
    return s.alpha_fixed;
}

@compute @workgroup_size(64)
fn context_forward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = (wid.y * nwg.x + wid.x) * 64u + lid.x;
    let M = s.ctx;
    let B = s.batch;
    if (e >= B * M) {
        return;
    }
    let b = e / M;
    let m = e % M;
    let S = s.hidden + M;
    let G = S;
    let a = alpha(m);
    var v = states[(s.t0 * B + b) * S + s.hidden + m];
    for (var step = 0u; step < s.steps; step++) {
        let t = s.t0 + step;
        v = (1.0 - a) * pre[(t * B + b) * G + s.hidden + m] + a * v;
        states[((t + 1u) * B + b) * S + s.hidden + m] = v;
    }
}
