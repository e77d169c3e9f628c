// GRU backward through time (buffers as in gru.wgsl). For step t:
//   dh = d_states + z_{t+1} dh_{t+1} + W_recᵀ du_{t+1}
//   dn = dh (1 − z), dz = dh (h_{t-1} − n), da_n = dn (1 − n²),
//   da_r = da_n (u_n + b_hn) r (1 − r), da_z = dz z (1 − z)
// da (T·B, 3H) = dL/dpre; du = (da_r, da_z, da_n r) is dL/du, whose n block
// differs and is kept in dun (T·B, H); dhz (B, H) carries z dh between steps.

struct Scan {
    batch: u32, hidden: u32, t0: u32, steps: u32,
    w_rec_off: u32, t_total: u32, bhn_off: u32, has_bhn: u32,
}

@group(0) @binding(0) var<uniform> s: Scan;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read> states: array<f32>;
@group(0) @binding(3) var<storage, read> gates: array<f32>;
@group(0) @binding(4) var<storage, read> d_states: array<f32>;
@group(0) @binding(5) var<storage, read_write> da: array<f32>;
@group(0) @binding(6) var<storage, read_write> dun: array<f32>;
@group(0) @binding(7) var<storage, read_write> dhz: array<f32>;

// ping-pong du of this workgroup's batch tile (3H per column)
var<workgroup> gs: array<f32, 6u * BT * HMAX>;

fn cell_back(t: u32, b: u32, i: u32, rec: f32) -> vec3<f32> {
    let H = s.hidden;
    let row = t * s.batch + b;
    var dh = d_states[row * H + i] + rec;
    if (t + 1u < s.t_total) {
        dh += dhz[b * H + i];
    }
    let g = row * 4u * H;
    let r = gates[g + i];
    let z = gates[g + H + i];
    let n = gates[g + 2u * H + i];
    let hn = gates[g + 3u * H + i];
    let dz = dh * (states[row * H + i] - n);
    let dan = dh * (1.0 - z) * (1.0 - n * n);
    let dar = dan * hn * r * (1.0 - r);
    let daz = dz * z * (1.0 - z);
    let o = row * 3u * H;
    da[o + i] = dar;
    da[o + H + i] = daz;
    da[o + 2u * H + i] = dan;
    dun[row * H + i] = dan * r;
    dhz[b * H + i] = dh * z;
    return vec3<f32>(dar, daz, dan * r);
}

@compute @workgroup_size(WG)
fn backward_persistent(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let H = s.hidden;
    let G = 3u * H;
    let B = s.batch;
    let b0 = wid.x * BT;
    let nb = min(BT, B - b0);
    let t_end = s.t0 + s.steps;
    for (var e = lid.x; e < BT * G; e += WG) {
        let bb = e / G;
        let r = e % G;
        var v = 0.0;
        if (bb < nb && t_end < s.t_total) {
            let row = t_end * B + b0 + bb;
            if (r < 2u * H) {
                v = da[row * G + r];
            } else {
                v = dun[row * H + r - 2u * H];
            }
        }
        gs[e] = v;
    }
    workgroupBarrier();
    var cur = 0u;
    for (var step = 0u; step < s.steps; step++) {
        let t = t_end - 1u - step;
        let nxt = 3u * BT * HMAX - cur;
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
    let G = 3u * H;
    let e = (wid.y * nwg.x + wid.x) * WG + lid.x;
    if (e >= s.batch * H) {
        return;
    }
    let b = e / H;
    let i = e % H;
    let t = s.t0;
    var acc = 0.0;
    if (t + 1u < s.t_total) {
        let row = (t + 1u) * s.batch + b;
        for (var r = 0u; r < 2u * H; r++) {
            acc += params[s.w_rec_off + r * H + i] * da[row * G + r];
        }
        for (var j = 0u; j < H; j++) {
            acc += params[s.w_rec_off + (2u * H + j) * H + i] * dun[row * H + j];
        }
    }
    cell_back(t, b, i, acc);
}
