// WARP-Phys on the GPU (the CPU reference is src/models/warp/phys.rs): the
// root's raw outputs pass through softplus to a system's parameters, and one
// integration step DT long from the state u gives the next state: for the
// damped spring the RK4 step matrix M = I + hJ + (hJ)²/2 + (hJ)³/6 +
// (hJ)⁴/24 with J = [[0, 1], [−k, −c]]; for Lotka–Volterra one Euler step.
// 2×2 matrices are vec4 (a00, a01, a10, a11). Prepended to warp_root.wgsl.

fn softplus(z: f32) -> f32 {
    return max(z, 0.0) + log(1.0 + exp(-abs(z)));
}

fn sigmoid(z: f32) -> f32 {
    return 1.0 / (1.0 + exp(-z));
}

fn mm(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(a.x * b.x + a.y * b.z, a.x * b.y + a.y * b.w, a.z * b.x + a.w * b.z, a.z * b.y + a.w * b.w);
}

fn mv(m: vec4<f32>, v: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(m.x * v.x + m.y * v.y, m.z * v.x + m.w * v.y);
}

struct Rk4 {
    m: vec4<f32>,
    dk: vec4<f32>,
    dc: vec4<f32>,
}

// the spring's RK4 matrix and its derivatives in k and c
fn msd_rk4(k: f32, c: f32, h: f32) -> Rk4 {
    let j = vec4<f32>(0.0, 1.0, -k, -c);
    let ek = vec4<f32>(0.0, 0.0, -1.0, 0.0);
    let ec = vec4<f32>(0.0, 0.0, 0.0, -1.0);
    var pw: array<vec4<f32>, 4>;
    pw[0] = vec4<f32>(1.0, 0.0, 0.0, 1.0);
    for (var n = 1u; n < 4u; n++) {
        pw[n] = mm(pw[n - 1u], j);
    }
    var r: Rk4;
    r.m = pw[0];
    r.dk = vec4<f32>(0.0);
    r.dc = vec4<f32>(0.0);
    var coef = 1.0;
    for (var n = 1u; n <= 4u; n++) {
        coef = coef * h / f32(n);
        r.m += coef * mm(pw[n - 1u], j);
        // d(Jⁿ) = Σ_{i<n} J^i E J^(n−1−i)
        for (var i = 0u; i < n; i++) {
            r.dk += coef * mm(mm(pw[i], ek), pw[n - 1u - i]);
            r.dc += coef * mm(mm(pw[i], ec), pw[n - 1u - i]);
        }
    }
    return r;
}

// the next state from raw root outputs `raw` (system 1 spring, 2 Lotka–Volterra)
fn phys_step(sys: u32, raw: vec4<f32>, s: vec2<f32>, h: f32) -> vec2<f32> {
    if (sys == 1u) {
        return mv(msd_rk4(softplus(raw.x), softplus(raw.y), h).m, s);
    }
    let a = softplus(raw.x);
    let b = softplus(raw.y);
    let d = softplus(raw.z);
    let g = softplus(raw.w);
    return vec2<f32>(s.x + h * (a * s.x - b * s.x * s.y), s.y + h * (d * s.x * s.y - g * s.y));
}

struct PhysGrad {
    d_raw: vec4<f32>,
    ds: vec2<f32>,
}

// from dL/d(next state): dL/d(raw outputs) and dL/d(state)
fn phys_step_backward(sys: u32, raw: vec4<f32>, s: vec2<f32>, dy: vec2<f32>, h: f32) -> PhysGrad {
    var o: PhysGrad;
    if (sys == 1u) {
        let r = msd_rk4(softplus(raw.x), softplus(raw.y), h);
        o.ds = vec2<f32>(r.m.x * dy.x + r.m.z * dy.y, r.m.y * dy.x + r.m.w * dy.y);
        o.d_raw = vec4<f32>(dot(dy, mv(r.dk, s)) * sigmoid(raw.x), dot(dy, mv(r.dc, s)) * sigmoid(raw.y), 0.0, 0.0);
        return o;
    }
    let a = softplus(raw.x);
    let b = softplus(raw.y);
    let d = softplus(raw.z);
    let g = softplus(raw.w);
    let x = s.x;
    let z = s.y;
    o.ds = vec2<f32>(dy.x * (1.0 + h * (a - b * z)) + dy.y * h * d * z, -dy.x * h * b * x + dy.y * (1.0 + h * (d * x - g)));
    o.d_raw = vec4<f32>(dy.x * h * x * sigmoid(raw.x), -dy.x * h * x * z * sigmoid(raw.y), dy.y * h * x * z * sigmoid(raw.z), -dy.y * h * z * sigmoid(raw.w));
    return o;
}

