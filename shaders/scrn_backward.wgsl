// SCRN backward (see scrn.wgsl). hidden: da_h,t = (d_states_h,t + Rᵀ da_h,t+1)
// ⊙ h_t (1 − h_t), written into columns 0..H of d_pre. Then the host's GEMM
// gives gm = da_h P; context (per (b, m), backwards in time):
//   ds = d_states_s,t + α ds_{t+1} + (gm_t, or gm_{t+1} in the code form)
//   d_pre_s,t = (1 − α) ds,  dα += ds (s_{t-1} − pre_s,t).
// aux = [carry α·ds (B·M) | dα partial sums (B·M)].

struct Scrn {
    batch: u32, hidden: u32, ctx: u32, t0: u32,
    steps: u32, t_total: u32, w_rec_off: u32, alpha_off: u32,
    alpha_mode: u32, code_form: u32, alpha_fixed: f32, _p: u32,
}

@group(0) @binding(0) var<uniform> s: Scrn;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read> pre: array<f32>;
@group(0) @binding(3) var<storage, read> states: array<f32>;
@group(0) @binding(4) var<storage, read> d_states: array<f32>;
@group(0) @binding(5) var<storage, read> gm: array<f32>;
@group(0) @binding(6) var<storage, read_write> d_pre: array<f32>;
@group(0) @binding(7) var<storage, read_write> aux: array<f32>;

var<workgroup> g: array<f32, 2u * BT * HMAX>;

fn alpha(m: u32) -> f32 {
    if (s.alpha_mode == 1u) {
        return params[s.alpha_off];
    }
    if (s.alpha_mode == 2u) {
        return params[s.alpha_off + m];
    }
    return s.alpha_fixed;
}

@compute @workgroup_size(WG)
fn hidden_back_persistent(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let H = s.hidden;
    let B = s.batch;
    let S = H + s.ctx;
    let b0 = wid.x * BT;
    let nb = min(BT, B - b0);
    let t_end = s.t0 + s.steps;
    for (var e = lid.x; e < BT * H; e += WG) {
        let bb = e / H;
        var v = 0.0;
        if (bb < nb && t_end < s.t_total) {
            v = d_pre[(t_end * B + b0 + bb) * S + e % H];
        }
        g[e] = v;
    }
    workgroupBarrier();
    var cur = 0u;
    for (var step = 0u; step < s.steps; step++) {
        let t = t_end - 1u - step;
        let nxt = BT * HMAX - cur;
        for (var i = lid.x; i < H; i += WG) {
            var acc: array<f32, BT>;
            for (var bb = 0u; bb < BT; bb++) {
                acc[bb] = 0.0;
            }
            for (var j = 0u; j < H; j++) {
                let w = params[s.w_rec_off + j * H + i];
                for (var bb = 0u; bb < BT; bb++) {
                    acc[bb] += w * g[cur + bb * H + j];
                }
            }
            for (var bb = 0u; bb < nb; bb++) {
                let row = t * B + b0 + bb;
                let hv = states[(row + B) * S + i];
                let d = (acc[bb] + d_states[row * S + i]) * hv * (1.0 - hv);
                g[nxt + bb * H + i] = d;
                d_pre[row * S + i] = d;
            }
        }
        cur = nxt;
        workgroupBarrier();
    }
}

@compute @workgroup_size(WG)
fn hidden_back_step(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
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
    let t = s.t0;
    let row = t * B + b;
    var acc = d_states[row * S + i];
    if (t + 1u < s.t_total) {
        let next = (row + B) * S;
        for (var j = 0u; j < H; j++) {
            acc += params[s.w_rec_off + j * H + i] * d_pre[next + j];
        }
    }
    let hv = states[(row + B) * S + i];
    d_pre[row * S + i] = acc * hv * (1.0 - hv);
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
