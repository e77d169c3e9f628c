// Backward scan of the Elman RNN through time:
//   da_t = (d_states_t + W_rec^T da_{t+1}) * act'(h_t)
// d_states_t = dL/dh_t from the readout; da_t = dL/d(pre-activation).
// Rows of states, d_states and da are `stride` apart (see rnn_forward.wgsl).
// Time runs backwards inside a dispatch over [t0, t0 + steps); chunks are
// chained through `da` itself. Constants as in rnn_forward.wgsl.

struct Scan {
    batch: u32, hidden: u32, t0: u32, steps: u32,
    w_rec_off: u32, act: u32, t_total: u32, stride: u32,
}

@group(0) @binding(0) var<uniform> s: Scan;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read> states: array<f32>;
@group(0) @binding(3) var<storage, read> d_states: array<f32>;
@group(0) @binding(4) var<storage, read_write> da: array<f32>;

var<workgroup> g: array<f32, 2u * BT * HMAX>;

// act' in terms of the output h
fn act_grad(h: f32) -> f32 {
    if (s.act == 1u) {
        return 1.0 - h * h;
    }
    if (s.act == 2u) {
        return h * (1.0 - h);
    }
    return 1.0;
}

@compute @workgroup_size(WG)
fn persistent(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let H = s.hidden;
    let B = s.batch;
    let S = s.stride;
    let b0 = wid.x * BT;
    let nb = min(BT, B - b0);
    let t_end = s.t0 + s.steps;
    for (var e = lid.x; e < BT * H; e += WG) {
        let bb = e / H;
        var v = 0.0;
        if (bb < nb && t_end < s.t_total) {
            v = da[(t_end * B + b0 + bb) * S + e % H];
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
                let gi = (t * B + b0 + bb) * S + i;
                let d = (acc[bb] + d_states[gi]) * act_grad(states[gi + B * S]);
                g[nxt + bb * H + i] = d;
                da[gi] = d;
            }
        }
        cur = nxt;
        workgroupBarrier();
    }
}

@compute @workgroup_size(WG)
fn step(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let H = s.hidden;
    let B = s.batch;
    let S = s.stride;
    let e = (wid.y * nwg.x + wid.x) * WG + lid.x;
    if (e >= B * H) {
        return;
    }
    let bi = e / H;
    let i = e % H;
    let t = s.t0;
    let gi = (t * B + bi) * S + i;
    var acc = d_states[gi];
    if (t + 1u < s.t_total) {
        let next = ((t + 1u) * B + bi) * S;
        for (var j = 0u; j < H; j++) {
            acc += params[s.w_rec_off + j * H + i] * da[next + j];
        }
    }
    da[gi] = acc * act_grad(states[gi + B * S]);
}
