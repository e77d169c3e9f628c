// WARP's root activation, shared by warp.wgsl (the hypernetwork) and
// warp_root.wgsl (the root MLP): code 0 ReLU, 1 tanh (RootAct::code).

// clamp: some drivers build tanh from exp and overflow past |v| ~ 44
fn act_of(code: u32, v: f32) -> f32 {
    if (code == 0u) {
        return max(v, 0.0);
    }
    return tanh(clamp(v, -15.0, 15.0));
}

// the derivative from the activation's output
fn act_grad_of(code: u32, y: f32) -> f32 {
    if (code == 0u) {
        return select(0.0, 1.0, y > 0.0);
    }
    return 1.0 - y * y;
}

