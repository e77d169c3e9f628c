// SCRN backward, the context units (see scrn.wgsl). The Elman scan
// (rnn_backward.wgsl) has written da_h,t into columns 0..H of d_pre; the
// host's GEMM gives gm = da_h P; then per (b, m), backwards in time:
//   ds = d_states_s,t + α ds_{t+1} + (gm_t, or gm_{t+1} in the code form)
//   d_pre_s,t = (1 − α) ds,  dα += ds (s_{t-1} − pre_s,t).
// aux = [carry α·ds (B·M) | dα partial sums (B·M)].

struct Scrn {
    batch: u32, hidden: u32, ctx: u32, t0: u32,
    steps: u32, t_total: u32, alpha_off: u32, alpha_mode: u32,
    code_form: u32, alpha_fixed: f32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> s: Scrn;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read> pre: array<f32>;
@group(0) @binding(3) var<storage, read> states: array<f32>;
@group(0) @binding(4) var<storage, read> d_states: array<f32>;
@group(0) @binding(5) var<storage, read> gm: array<f32>;
@group(0) @binding(6) var<storage, read_write> d_pre: array<f32>;
@group(0) @binding(7) var<storage, read_write> aux: array<f32>;

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
fn context_backward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = (wid.y * nwg.x + wid.x) * 64u + lid.x;
    let M = s.ctx;
    let B = s.batch;
    if (e >= B * M) {
        return;
    }
    let H = s.hidden;
    let S = H + M;
    let b = e / M;
    let m = e % M;
    let a = alpha(m);
    let t_end = s.t0 + s.steps;
    var carry = 0.0;
    var dal = 0.0;
    if (t_end < s.t_total) {
        carry = aux[e];
        dal = aux[B * M + e];
    }
    for (var step = 0u; step < s.steps; step++) {
        let t = t_end - 1u - step;
        let row = t * B + b;
        var via_h = 0.0;
        if (s.code_form == 0u) {
            via_h = gm[row * M + m];
        } else if (t + 1u < s.t_total) {
            via_h = gm[(row + B) * M + m];
        }
        let ds = d_states[row * S + H + m] + carry + via_h;
        d_pre[row * S + H + m] = (1.0 - a) * ds;
        dal += ds * (states[row * S + H + m] - pre[row * S + H + m]);
        carry = a * ds;
    }
    aux[e] = carry;
    aux[B * M + e] = dal;
}
