// uRNN forward (after urnn_common.wgsl): for t in [t0, t0 + steps),
//   z = D3 R2 F⁻¹ D2 Π R1 F D1 h_{t-1} + pre_t,  h_t = modReLU(z).
// states (T + 1, B, 2N) hold [re; im]; pre (T·B, 2N) = V x_t.
// Scratch regions: A (h, then the inverse FFT), B (the forward FFT), red.

@group(0) @binding(5) var<storage, read_write> states: array<f32>;

@compute @workgroup_size(WG)
fn forward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    lid_x = lid.x;
    let n = u.n;
    let b = wid.x;
    let B = u.batch;
    sbase = b * u.scw;
    let ra = 0u;
    let rb = 2u * n;
    let red = 4u * n;
    let c1 = 2.0 / vnorm(0u, red);
    let c2 = 2.0 / vnorm(1u, red);
    for (var k = lid_x; k < n; k += WG) {
        let o = (u.t0 * B + b) * 2u * n;
        stc(ra, k, vec2<f32>(states[o + k], states[o + n + k]));
    }
    sync();
    for (var step = 0u; step < u.steps; step++) {
        let t = u.t0 + step;
        // D1, into B in bit-reversed order for the FFT
        for (var k = lid_x; k < n; k += WG) {
            stc(rb, bitrev(k), cmul(dg(0u, k), ldc(ra, k)));
        }
        sync();
        fft(rb, -1.0);
        let s1 = vdot(0u, rb, red);
        // R1, Π, D2, into A bit-reversed for the inverse FFT
        for (var j = lid_x; j < n; j += WG) {
            let p = perm[j];
            let x = ldc(rb, p) - c1 * cmul(rv(0u, p), s1);
            stc(ra, bitrev(j), cmul(dg(1u, j), x));
        }
        sync();
        fft(ra, 1.0);
        let s2 = vdot(1u, ra, red);
        // R2, D3, the input, modReLU
        let row = t * B + b;
        for (var k = lid_x; k < n; k += WG) {
            let y = cmul(dg(2u, k), ldc(ra, k) - c2 * cmul(rv(1u, k), s2));
            let z = y + vec2<f32>(pre[row * 2u * n + k], pre[row * 2u * n + n + k]);
            let r = length(z);
            let h = max(r + bmod(k), 0.0) / (r + EPS) * z;
            stc(ra, k, h);
            let o = (row + B) * 2u * n;
            states[o + k] = h.x;
            states[o + n + k] = h.y;
        }
        sync();
    }
}
