// SCRN forward. states (T + 1, B, S = H + M) hold [h; s]; pre (T·B, G = H + M)
// = [A x + b_h | B x + b_s]. Two scans around one GEMM (see scrn/gpu.rs):
//   context:  s_t = (1 − α) pre_s + α s_{t-1}, one invocation per (b, m)
//             looping over time (the context units do not depend on h);
//   then the host's GEMM adds P s_t (or P s_{t-1}) into pre_h;
//   hidden:   h_t = σ(pre_h + R h_{t-1}), persistent or one dispatch per step.
// Constants: WG threads, BT batch columns per workgroup, HMAX = H.

struct Scrn {
    batch: u32, hidden: u32, ctx: u32, t0: u32,
    steps: u32, t_total: u32, w_rec_off: u32, alpha_off: u32,
    alpha_mode: u32, code_form: u32, alpha_fixed: f32, _p: u32,
}

@group(0) @binding(0) var<uniform> s: Scrn;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read> pre: array<f32>;
@group(0) @binding(3) var<storage, read_write> states: array<f32>;

var<workgroup> hs: array<f32, 2u * BT * HMAX>;

fn alpha(m: u32) -> f32 {
    if (s.alpha_mode == 1u) {
        return params[s.alpha_off];
    }
    if (s.alpha_mode == 2u) {
        return params[s.alpha_off + m];
    }
    return s.alpha_fixed;
}

fn sigm(v: f32) -> f32 {
    return 1.0 / (1.0 + exp(-clamp(v, -30.0, 30.0)));
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

@compute @workgroup_size(WG)
fn hidden_persistent(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let H = s.hidden;
    let B = s.batch;
    let S = H + s.ctx;
    let b0 = wid.x * BT;
    let nb = min(BT, B - b0);
    for (var e = lid.x; e < BT * H; e += WG) {
        let bb = e / H;
        var v = 0.0;
        if (bb < nb) {
            v = states[(s.t0 * B + b0 + bb) * S + e % H];
        }
        hs[e] = v;
    }
    workgroupBarrier();
    var cur = 0u;
    for (var step = 0u; step < s.steps; step++) {
        let t = s.t0 + step;
        let nxt = BT * HMAX - cur;
        for (var i = lid.x; i < H; i += WG) {
            var acc: array<f32, BT>;
            for (var bb = 0u; bb < BT; bb++) {
                acc[bb] = 0.0;
            }
            let wrow = s.w_rec_off + i * H;
            for (var j = 0u; j < H; j++) {
                let w = params[wrow + j];
                for (var bb = 0u; bb < BT; bb++) {
                    acc[bb] += w * hs[cur + bb * H + j];
                }
            }
            for (var bb = 0u; bb < nb; bb++) {
                let row = t * B + b0 + bb;
                let v = sigm(acc[bb] + pre[row * S + i]);
                hs[nxt + bb * H + i] = v;
                states[(row + B) * S + i] = v;
            }
        }
        cur = nxt;
        workgroupBarrier();
    }
}

@compute @workgroup_size(WG)
fn hidden_step(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let H = s.hidden;
    let B = s.batch;
    let S = H + s.ctx;
    let e = (wid.y * nwg.x + wid.x) * WG + lid.x;
    if (e >= B * H) {
        return;
    }
    let b = e / H;
    let i = e % H;
    let row = s.t0 * B + b;
    var acc = pre[row * S + i];
    let wrow = s.w_rec_off + i * H;
    for (var j = 0u; j < H; j++) {
        acc += params[wrow + j] * states[row * S + j];
    }
    states[(row + B) * S + i] = sigm(acc);
}
