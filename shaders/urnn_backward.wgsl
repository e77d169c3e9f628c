// uRNN backward through time (after urnn_common.wgsl), t from t0 + steps − 1
// down to t0. Each step recomputes R1's and R2's inputs from h_{t-1}, then
// runs the adjoint of every factor (see models/urnn/cpu.rs):
//   modReLU → z̄ (into d_pre), D3, R2, F (the adjoint of F⁻¹), D2, Πᵀ, R1,
//   F⁻¹, D1 → h̄_{t-1}, carried in region G.
// aux = [B rows of gw gradient floats (dθ 3N | dv 4N | db N | dh0 2N) |
//        B rows of the carried h̄ (2N)]; a row belongs to one workgroup.
// Scratch regions: X1 (R1's input), X2 (R2's input), G, A, red.

@group(0) @binding(5) var<storage, read> states: array<f32>;
@group(0) @binding(6) var<storage, read> d_states: array<f32>;
@group(0) @binding(7) var<storage, read_write> d_pre: array<f32>;
@group(0) @binding(8) var<storage, read_write> aux: array<f32>;

fn acc(i: u32, v: f32) {
    aux[i] += v;
}

@compute @workgroup_size(WG)
fn backward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    lid_x = lid.x;
    let n = u.n;
    let b = wid.x;
    let B = u.batch;
    sbase = b * u.scw;
    let x1 = 0u;
    let x2 = 2u * n;
    let rg = 4u * n;
    let ra = 6u * n;
    let red = 8u * n;
    let gb = b * u.gw;
    let cb = B * u.gw + b * 2u * n;
    let vn1 = vnorm(0u, red);
    let vn2 = vnorm(1u, red);
    let c1 = 2.0 / vn1;
    let c2 = 2.0 / vn2;
    let t_end = u.t0 + u.steps;
    let first = t_end == u.t_total;
    for (var k = lid_x; k < n; k += WG) {
        if (first) {
            stc(rg, k, vec2<f32>(0.0));
        } else {
            stc(rg, k, vec2<f32>(aux[cb + k], aux[cb + n + k]));
        }
    }
    if (first) {
        for (var i = lid_x; i < u.gw; i += WG) {
            aux[gb + i] = 0.0;
        }
    }
    sync();
    for (var step = 0u; step < u.steps; step++) {
        let t = t_end - 1u - step;
        let row = t * B + b;
        let hp = row * 2u * n;
        // recompute: D1 h_{t-1} bit-reversed into X1, F
        for (var k = lid_x; k < n; k += WG) {
            stc(x1, bitrev(k), cmul(dg(0u, k), vec2<f32>(states[hp + k], states[hp + n + k])));
        }
        sync();
        fft(x1, -1.0);
        let s1 = vdot(0u, x1, red);
        for (var j = lid_x; j < n; j += WG) {
            let p = perm[j];
            stc(x2, bitrev(j), cmul(dg(1u, j), ldc(x1, p) - c1 * cmul(rv(0u, p), s1)));
        }
        sync();
        fft(x2, 1.0);
        let s2 = vdot(1u, x2, red);
        // modReLU and D3
        for (var k = lid_x; k < n; k += WG) {
            let d3 = dg(2u, k);
            let y = cmul(d3, ldc(x2, k) - c2 * cmul(rv(1u, k), s2));
            let z = y + vec2<f32>(pre[hp + k], pre[hp + n + k]);
            let hb = ldc(rg, k) + vec2<f32>(d_states[hp + k], d_states[hp + n + k]);
            let r = length(z);
            let bk = bmod(k);
            var zb = vec2<f32>(0.0);
            if (r + bk > 0.0) {
                let q = dot(hb, z);
                if (u.has_bias == 1u) {
                    acc(gb + u.db_off + k, q / (r + EPS));
                }
                var e = 0.0;
                if (r > 0.0) {
                    e = q * (EPS - bk) / ((r + EPS) * (r + EPS) * r);
                }
                zb = (r + bk) / (r + EPS) * hb + e * z;
            }
            d_pre[hp + k] = zb.x;
            d_pre[hp + n + k] = zb.y;
            acc(gb + 2u * n + k, zb.y * y.x - zb.x * y.y);
            stc(rg, k, cmul(conj(d3), zb));
        }
        sync();
        // R2, written bit-reversed into A for F
        reflect_back(1u, x2, s2, vn2, gb, rg, ra, red);
        fft(ra, -1.0);
        // D2 and Πᵀ, into G
        for (var j = lid_x; j < n; j += WG) {
            let p = perm[j];
            let d2 = dg(1u, j);
            let y = cmul(d2, ldc(x1, p) - c1 * cmul(rv(0u, p), s1));
            let g = ldc(ra, j);
            acc(gb + n + j, g.y * y.x - g.x * y.y);
            stc(rg, p, cmul(conj(d2), g));
        }
        sync();
        // R1, written bit-reversed into A for F⁻¹
        reflect_back(0u, x1, s1, vn1, gb, rg, ra, red);
        fft(ra, 1.0);
        // D1: h̄_{t-1} into G
        for (var k = lid_x; k < n; k += WG) {
            let d1 = dg(0u, k);
            let y = cmul(d1, vec2<f32>(states[hp + k], states[hp + n + k]));
            let g = ldc(ra, k);
            acc(gb + k, g.y * y.x - g.x * y.y);
            stc(rg, k, cmul(conj(d1), g));
        }
        sync();
    }
    for (var k = lid_x; k < n; k += WG) {
        let g = ldc(rg, k);
        aux[cb + k] = g.x;
        aux[cb + n + k] = g.y;
        if (u.t0 == 0u) {
            aux[gb + u.dh0_off + k] = g.x;
            aux[gb + u.dh0_off + n + k] = g.y;
        }
    }
}

// The adjoint of reflection j for its input x (region xr, s = v^H x):
// v̄ += −c(conj(s) G + a x) + (2c/‖v‖²) Re(a s) v with a = G^H v, c = 2/‖v‖²,
// then G ← R G, written bit-reversed into region ra for the next FFT.
fn reflect_back(j: u32, xr: u32, s: vec2<f32>, vn: f32, gb: u32, rg: u32, ra: u32, red: u32) {
    let n = u.n;
    let c = 2.0 / vn;
    let a = vdot_g(j, rg, red);
    let f = 2.0 * c / vn * (a.x * s.x - a.y * s.y);
    let o = gb + 3u * n + j * 2u * n;
    for (var k = lid_x; k < n; k += WG) {
        let g = ldc(rg, k);
        let v = rv(j, k);
        let tv = cmul(conj(s), g) + cmul(a, ldc(xr, k));
        acc(o + k, -c * tv.x + f * v.x);
        acc(o + n + k, -c * tv.y + f * v.y);
        stc(ra, bitrev(k), g - c * cmul(v, conj(a)));
    }
    sync();
}

// G^H v_j = Σ conj(g_k) v_k for region r
fn vdot_g(j: u32, r: u32, red: u32) -> vec2<f32> {
    var s = vec2<f32>(0.0);
    for (var k = lid_x; k < u.n; k += WG) {
        s += cmul(conj(ldc(r, k)), rv(j, k));
    }
    return reduce(red, s);
}
