// WARP's decoding: every row (t, b) runs the root MLP whose weights are its
// own state θ_{t+1}, on τ_t = t/(T−1) (and, with `root_x`, the row's input
// x_t: layer 0 reads [τ; x]). One invocation per row of rows row0 ..
// row0 + nrows (all of them, or one step's in autoregressive mode); the hidden
// activations (and, backwards, two vectors dz/da) live in a scratch row.
// Layout of θ as in src/models/warp/mod.rs: per layer W (out×in) then b;
// layer 0 reads τ (width 1), `depth` hidden layers of `width`, output `out_w`.

struct Root {
    batch: u32, t_len: u32, width: u32, depth: u32,
    out_w: u32, dd: u32, scratch_w: u32, act: u32,
    din: u32, root_x: u32, row0: u32, nrows: u32,
    // phys: 0 none, 1 spring, 2 Lotka–Volterra (then out_w is the root's
    // parameter count and y_w the state's width, 2); dt its step
    dx_out: u32, phys: u32, y_w: u32, dt: f32,
}

@group(0) @binding(0) var<uniform> u: Root;
@group(0) @binding(1) var<storage, read> states: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(5) var<storage, read> xin: array<f32>;
// decode_backward with dx_out (autoregressive with root_x): dL/dx of each
// row added here, rows din wide (the fed inputs' gradient)
@group(0) @binding(6) var<storage, read_write> dxin: array<f32>;

fn act(v: f32) -> f32 {
    return act_of(u.act, v);
}

fn act_grad(y: f32) -> f32 {
    return act_grad_of(u.act, y);
}

// WARP-Phys: the raw parameters root_forward left in row r's scratch, and
// the state the step starts from (the row's input)
fn raw_of(r: u32) -> vec4<f32> {
    var raw = vec4<f32>(0.0);
    let at = r * u.scratch_w + u.depth * u.width;
    for (var k = 0u; k < u.out_w; k++) {
        raw[k] = scratch[at + k];
    }
    return raw;
}
fn state_of(r: u32) -> vec2<f32> {
    return vec2<f32>(xin[r * u.din], xin[r * u.din + 1u]);
}

fn x_width() -> u32 {
    return select(0u, u.din, u.root_x != 0u);
}
fn inp_of(l: u32) -> u32 {
    return select(u.width, 1u + x_width(), l == 0u);
}
fn out_of(l: u32) -> u32 {
    return select(u.width, u.out_w, l == u.depth);
}
fn w_off(l: u32) -> u32 {
    if (l == 0u) {
        return 0u;
    }
    return (2u + x_width()) * u.width + (l - 1u) * (u.width * u.width + u.width);
}

// input j of layer 0 for row r: τ, then x_t
fn in0(r: u32, j: u32, tv: f32) -> f32 {
    if (j == 0u) {
        return tv;
    }
    return xin[r * u.din + j - 1u];
}

fn tau(t: u32) -> f32 {
    if (u.t_len > 1u) {
        return f32(t) / f32(u.t_len - 1u);
    }
    return 0.0;
}

// The hidden activations of row r into its scratch row; the outputs into
// `out` when `write_y`, into the scratch row after the activations when
// `raw_out` (WARP-Phys: the raw parameters).
fn root_forward(r: u32, write_y: bool, raw_out: bool) {
    let th = (r + u.batch) * u.dd;
    let sb = r * u.scratch_w;
    let tv = tau(r / u.batch);
    for (var l = 0u; l <= u.depth; l++) {
        let ni = inp_of(l);
        let no = out_of(l);
        let wo = th + w_off(l);
        let bo = wo + ni * no;
        for (var k = 0u; k < no; k++) {
            var z = states[bo + k];
            if (l == 0u) {
                for (var j = 0u; j < ni; j++) {
                    z += states[wo + k * ni + j] * in0(r, j, tv);
                }
            } else {
                let a0 = sb + (l - 1u) * u.width;
                for (var j = 0u; j < ni; j++) {
                    z += states[wo + k * ni + j] * scratch[a0 + j];
                }
            }
            if (l == u.depth) {
                if (write_y) {
                    out[r * u.out_w + k] = z;
                }
                if (raw_out) {
                    scratch[sb + u.depth * u.width + k] = z;
                }
            } else {
                scratch[sb + l * u.width + k] = act(z);
            }
        }
    }
}

@compute @workgroup_size(64)
fn decode(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = (wid.y * nwg.x + wid.x) * 64u + lid.x;
    if (i >= u.nrows) {
        return;
    }
    let r = u.row0 + i;
    if (u.phys == 0u) {
        root_forward(r, true, false);
        return;
    }
    root_forward(r, false, true);
    let y = phys_step(u.phys, raw_of(r), state_of(r), u.dt);
    out[r * u.y_w] = y.x;
    out[r * u.y_w + 1u] = y.y;
}

// dL/dθ of row r (out = d_states, every entry written) from dL/dy
@compute @workgroup_size(64)
fn decode_backward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = (wid.y * nwg.x + wid.x) * 64u + lid.x;
    if (i >= u.nrows) {
        return;
    }
    let r = u.row0 + i;
    root_forward(r, false, u.phys != 0u);
    let th = (r + u.batch) * u.dd;
    let g = r * u.dd;
    let sb = r * u.scratch_w;
    let m = max(max(u.width, u.out_w), 1u + x_width());
    let dz = sb + u.depth * u.width;
    let da = dz + m;
    let tv = tau(r / u.batch);
    if (u.phys == 0u) {
        for (var k = 0u; k < u.out_w; k++) {
            scratch[dz + k] = dy[r * u.y_w + k];
        }
    } else {
        // through the integration step: dL/d(raw) seeds the root's backward,
        // dL/d(state) joins the fed inputs' gradient
        let pg = phys_step_backward(u.phys, raw_of(r), state_of(r), vec2<f32>(dy[r * u.y_w], dy[r * u.y_w + 1u]), u.dt);
        var d_raw = pg.d_raw;
        for (var k = 0u; k < u.out_w; k++) {
            scratch[dz + k] = d_raw[k];
        }
        if (u.dx_out != 0u) {
            dxin[r * u.din] += pg.ds.x;
            dxin[r * u.din + 1u] += pg.ds.y;
        }
    }
    for (var li = i32(u.depth); li >= 0; li--) {
        let l = u32(li);
        let ni = inp_of(l);
        let no = out_of(l);
        let wo = w_off(l);
        let bo = wo + ni * no;
        let a0 = sb + (max(l, 1u) - 1u) * u.width;
        for (var j = 0u; j < ni; j++) {
            scratch[da + j] = 0.0;
        }
        for (var k = 0u; k < no; k++) {
            let d = scratch[dz + k];
            out[g + bo + k] = d;
            for (var j = 0u; j < ni; j++) {
                var a = 0.0;
                if (l > 0u) {
                    a = scratch[a0 + j];
                } else {
                    a = in0(r, j, tv);
                }
                out[g + wo + k * ni + j] = d * a;
                scratch[da + j] += states[th + wo + k * ni + j] * d;
            }
        }
        if (l > 0u) {
            for (var j = 0u; j < ni; j++) {
                scratch[dz + j] = scratch[da + j] * act_grad(scratch[a0 + j]);
            }
        } else if (u.dx_out != 0u) {
            // layer 0 read [τ; x]: da[1..] is dL/dx
            for (var j = 1u; j < ni; j++) {
                dxin[r * u.din + j - 1u] += scratch[da + j];
            }
        }
    }
}
