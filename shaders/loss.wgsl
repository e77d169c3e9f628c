// Loss and its gradient per row of the readout outputs y (rows, outs).
// kind 0: softmax cross-entropy against a class per row; 1: squared error;
// 2: Gaussian NLL, outs = 2C (means, then raw sds: softplus + 1e-3), C targets.
// `norm` makes the sum of row_loss the mean loss over masked rows.

struct Loss {
    rows: u32, outs: u32, kind: u32, _p0: u32,
    norm: f32, _p1: f32, _p2: f32, _p3: f32,
}

@group(0) @binding(0) var<uniform> l: Loss;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> cls: array<u32>;
@group(0) @binding(3) var<storage, read> tgt: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;
@group(0) @binding(5) var<storage, read_write> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> row_loss: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = (wid.y * nwg.x + wid.x) * 64u + lid.x;
    if (r >= l.rows) {
        return;
    }
    let m = mask[r];
    let base = r * l.outs;
    if (m == 0.0) {
        for (var o = 0u; o < l.outs; o++) {
            dy[base + o] = 0.0;
        }
        row_loss[r] = 0.0;
        return;
    }
    let w = m * l.norm;
    if (l.kind == 0u) {
        var mx = y[base];
        for (var o = 1u; o < l.outs; o++) {
            mx = max(mx, y[base + o]);
        }
        var z = 0.0;
        for (var o = 0u; o < l.outs; o++) {
            z += exp(y[base + o] - mx);
        }
        let lse = mx + log(z);
        let c = cls[r];
        row_loss[r] = w * (lse - y[base + c]);
        for (var o = 0u; o < l.outs; o++) {
            var p = exp(y[base + o] - lse);
            if (o == c) {
                p -= 1.0;
            }
            dy[base + o] = w * p;
        }
    } else if (l.kind == 2u) {
        let c = l.outs / 2u;
        var acc = 0.0;
        for (var o = 0u; o < c; o++) {
            let raw = y[base + c + o];
            // softplus; log(1 + ex) loses ex's digits for small e, so its series there
            let ex = exp(-abs(raw));
            let lp = select(log(1.0 + ex), ex * (1.0 - 0.5 * ex), ex < 1e-3);
            let sd = max(raw, 0.0) + lp + 1e-3;
            let e = y[base + o] - tgt[r * c + o];
            let v = sd * sd;
            acc += log(sd) + 0.5 * e * e / v;
            dy[base + o] = w * e / v;
            dy[base + c + o] = w * (1.0 / sd - e * e / (v * sd)) / (1.0 + exp(-raw));
        }
        row_loss[r] = w * acc;
    } else {
        var acc = 0.0;
        for (var o = 0u; o < l.outs; o++) {
            let e = y[base + o] - tgt[base + o];
            acc += e * e;
            dy[base + o] = 2.0 * w * e;
        }
        row_loss[r] = w * acc;
    }
}
