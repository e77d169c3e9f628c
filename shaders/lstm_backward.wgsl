// LSTM backward through time (see lstm.wgsl for the buffers). For step t:
//   dh = d_states_h + W_recᵀ da_{t+1},  dc = d_states_c + f_{t+1} dc_{t+1} + dh o (1 − tanh² c_t)
//   da = (dc g i(1−i), dc c_{t−1} f(1−f), dc i (1−g²), dh tanh(c_t) o(1−o)).
// Time runs backwards inside a dispatch over [t0, t0 + steps); chunks are
// chained through `da` and `dc`.

struct Scan {
    batch: u32, hidden: u32, t0: u32, steps: u32,
    w_rec_off: u32, t_total: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> s: Scan;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read> states: array<f32>;
@group(0) @binding(3) var<storage, read> gates: array<f32>;
@group(0) @binding(4) var<storage, read> d_states: array<f32>;
@group(0) @binding(5) var<storage, read_write> da: array<f32>;
@group(0) @binding(6) var<storage, read_write> dc: array<f32>;

// ping-pong da of this workgroup's batch tile (4H per column)
var<workgroup> gs: array<f32, 8u * BT * HMAX>;

fn tanh_c(v: f32) -> f32 {
    return tanh(clamp(v, -15.0, 15.0));
}

// Step t for column b, unit i, given the recurrent part of dL/dh_t.
fn cell_back(t: u32, b: u32, i: u32, dh_rec: f32) -> vec4<f32> {
    let H = s.hidden;
    let G = 4u * H;
    let S = 2u * H;
    let row = t * s.batch + b;
    let ig = gates[row * G + i];
    let fg = gates[row * G + H + i];
    let gg = gates[row * G + 2u * H + i];
    let og = gates[row * G + 3u * H + i];
    let tc = tanh_c(states[row * S + s.batch * S + H + i]);
    let cp = states[row * S + H + i];
    let dh = dh_rec + d_states[row * S + i];
    var dcc = 0.0;
    if (t + 1u < s.t_total) {
        dcc = dc[b * H + i];
    }
    let dcv = d_states[row * S + H + i] + dcc + dh * og * (1.0 - tc * tc);
    let d = vec4<f32>(dcv * gg * ig * (1.0 - ig), dcv * cp * fg * (1.0 - fg), dcv * ig * (1.0 - gg * gg),
                      dh * tc * og * (1.0 - og));
    da[row * G + i] = d.x;
    da[row * G + H + i] = d.y;
    da[row * G + 2u * H + i] = d.z;
    da[row * G + 3u * H + i] = d.w;
    dc[b * H + i] = dcv * fg;
    return d;
}

@compute @workgroup_size(WG)
fn backward_persistent(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let H = s.hidden;
    let G = 4u * H;
    let B = s.batch;
    let b0 = wid.x * BT;
    let nb = min(BT, B - b0);
    let t_end = s.t0 + s.steps;
    for (var e = lid.x; e < BT * G; e += WG) {
        let bb = e / G;
        var v = 0.0;
        if (bb < nb && t_end < s.t_total) {
            v = da[(t_end * B + b0 + bb) * G + e % G];
        }
        gs[e] = v;
    }
    workgroupBarrier();
    var cur = 0u;
    for (var step = 0u; step < s.steps; step++) {
        let t = t_end - 1u - step;
        let nxt = 4u * BT * HMAX - cur;
        for (var i = lid.x; i < H; i += WG) {
            var acc: array<f32, BT>;
            for (var bb = 0u; bb < BT; bb++) {
                acc[bb] = 0.0;
            }
            for (var r = 0u; r < G; r++) {
                let w = params[s.w_rec_off + r * H + i];
                for (var bb = 0u; bb < BT; bb++) {
                    acc[bb] += w * gs[cur + bb * G + r];
                }
            }
            for (var bb = 0u; bb < nb; bb++) {
                let d = cell_back(t, b0 + bb, i, acc[bb]);
                let o = nxt + bb * G + i;
                gs[o] = d.x;
                gs[o + H] = d.y;
                gs[o + 2u * H] = d.z;
                gs[o + 3u * H] = d.w;
            }
        }
        cur = nxt;
        workgroupBarrier();
    }
}

@compute @workgroup_size(WG)
fn backward_step(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let H = s.hidden;
    let G = 4u * H;
    let e = (wid.y * nwg.x + wid.x) * WG + lid.x;
    if (e >= s.batch * H) {
        return;
    }
    let b = e / H;
    let i = e % H;
    let t = s.t0;
    var acc = 0.0;
    if (t + 1u < s.t_total) {
        let next = ((t + 1u) * s.batch + b) * G;
        for (var r = 0u; r < G; r++) {
            acc += params[s.w_rec_off + r * H + i] * da[next + r];
        }
    }
    cell_back(t, b, i, acc);
}
