// uRNN kernels, the part shared by forward and backward (the host puts it
// in front of urnn.wgsl and urnn_backward.wgsl). One workgroup owns one
// batch row and loops over time: the FFTs and reflections mix all N units,
// so the whole complex state must live with one workgroup.
//
// Complex vectors live in a scratch array as [re (N); im (N)] regions: in
// workgroup memory when USE_WG = 1 (WSC floats), else in the row's own
// slice of the `scratch` storage buffer (same code, storage barriers).
// Constants: WG threads (a power of two), USE_WG, WSC.

struct Urnn {
    batch: u32, n: u32, t0: u32, steps: u32,
    t_total: u32, log2n: u32, theta_off: u32, refl_off: u32,
    bmod_off: u32, has_bias: u32, scw: u32, gw: u32,
    db_off: u32, dh0_off: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> u: Urnn;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read> pre: array<f32>;
@group(0) @binding(3) var<storage, read> perm: array<u32>;
@group(0) @binding(4) var<storage, read_write> scratch: array<f32>;

var<workgroup> wsc: array<f32, WSC>;
var<private> sbase: u32;

const EPS: f32 = 1e-5;
const PI: f32 = 3.14159265358979;

fn ld(i: u32) -> f32 {
    if (USE_WG == 1u) {
        return wsc[i];
    }
    return scratch[sbase + i];
}

fn st(i: u32, v: f32) {
    if (USE_WG == 1u) {
        wsc[i] = v;
    } else {
        scratch[sbase + i] = v;
    }
}

fn ldc(r: u32, k: u32) -> vec2<f32> {
    return vec2<f32>(ld(r + k), ld(r + u.n + k));
}

fn stc(r: u32, k: u32, v: vec2<f32>) {
    st(r + k, v.x);
    st(r + u.n + k, v.y);
}

fn sync() {
    workgroupBarrier();
    storageBarrier();
}

fn cmul(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}

fn conj(a: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(a.x, -a.y);
}

// e^{iθ} of diagonal d (0, 1, 2) at unit k
fn dg(d: u32, k: u32) -> vec2<f32> {
    let th = params[u.theta_off + d * u.n + k];
    return vec2<f32>(cos(th), sin(th));
}

// reflection vector j (0, 1) at unit k
fn rv(j: u32, k: u32) -> vec2<f32> {
    let o = u.refl_off + j * 2u * u.n;
    return vec2<f32>(params[o + k], params[o + u.n + k]);
}

// (a loop, not reverseBits: older Metal versions lack it)
fn bitrev(k: u32) -> u32 {
    var r = 0u;
    var x = k;
    for (var i = 0u; i < u.log2n; i++) {
        r = (r << 1u) | (x & 1u);
        x = x >> 1u;
    }
    return r;
}

// In-place radix-2 butterflies on region r, whose input was written in
// bit-reversed order; scaled by 1/√N (unitary). sign −1 forward, +1 inverse.
fn fft(r: u32, sign: f32) {
    let n = u.n;
    let scale = inverseSqrt(f32(n));
    for (var s = 0u; s < u.log2n; s++) {
        let half = 1u << s;
        let last = s + 1u == u.log2n;
        for (var q = lid_x; q < n / 2u; q += WG) {
            let k = q % half;
            let a = (q / half) * 2u * half + k;
            let b = a + half;
            let ang = sign * PI * f32(k) / f32(half);
            let w = vec2<f32>(cos(ang), sin(ang));
            let x = ldc(r, a);
            let y = cmul(w, ldc(r, b));
            var o0 = x + y;
            var o1 = x - y;
            if (last) {
                o0 *= scale;
                o1 *= scale;
            }
            stc(r, a, o0);
            stc(r, b, o1);
        }
        sync();
    }
}

var<private> lid_x: u32;

// Σ over the workgroup of each thread's complex partial; every thread gets
// the total. `red` is the reduction region (2·WG floats).
fn reduce(red: u32, part: vec2<f32>) -> vec2<f32> {
    st(red + 2u * lid_x, part.x);
    st(red + 2u * lid_x + 1u, part.y);
    sync();
    for (var w = WG / 2u; w > 0u; w = w / 2u) {
        if (lid_x < w) {
            st(red + 2u * lid_x, ld(red + 2u * lid_x) + ld(red + 2u * (lid_x + w)));
            st(red + 2u * lid_x + 1u, ld(red + 2u * lid_x + 1u) + ld(red + 2u * (lid_x + w) + 1u));
        }
        sync();
    }
    let total = vec2<f32>(ld(red), ld(red + 1u));
    sync();
    return total;
}

// v_j^H x for region r
fn vdot(j: u32, r: u32, red: u32) -> vec2<f32> {
    var acc = vec2<f32>(0.0);
    for (var k = lid_x; k < u.n; k += WG) {
        acc += cmul(conj(rv(j, k)), ldc(r, k));
    }
    return reduce(red, acc);
}

// ‖v_j‖²
fn vnorm(j: u32, red: u32) -> f32 {
    var acc = vec2<f32>(0.0);
    for (var k = lid_x; k < u.n; k += WG) {
        let v = rv(j, k);
        acc.x += dot(v, v);
    }
    return reduce(red, acc).x;
}

fn bmod(k: u32) -> f32 {
    if (u.has_bias == 1u) {
        return params[u.bmod_off + k];
    }
    return 0.0;
}
