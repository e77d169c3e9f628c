//! WGSL sources, embedded at build time, and their specialisation.
//!
//! Sizes that must be compile-time in WGSL (workgroup size, workgroup array
//! lengths) are injected as `const` declarations in front of the source; a
//! pipeline is cached per (shader, entry, constants).

#[derive(Clone, Copy, Debug)]
pub struct ShaderSrc {
    pub name: &'static str,
    pub src: &'static str,
    /// the constants this shader expects, with values for validation
    pub defaults: &'static [(&'static str, u32)],
}

impl ShaderSrc {
    pub fn specialise(&self, consts: &[(&str, u32)]) -> String {
        let mut out = String::new();
        for (name, _) in self.defaults {
            let v = consts
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| *v)
                .unwrap_or_else(|| panic!("shader {} needs constant {name}", self.name));
            out.push_str(&format!("const {name}: u32 = {v}u;\n"));
        }
        out.push_str(self.src);
        out
    }

    /// The source with its default constants: what the naga test validates.
    pub fn with_defaults(&self) -> String {
        self.specialise(self.defaults)
    }
}

const SCAN_DEFAULTS: &[(&str, u32)] = &[("WG", 64), ("BT", 4), ("HMAX", 128)];

pub const GEMM: ShaderSrc = ShaderSrc { name: "gemm", src: include_str!("../../shaders/gemm.wgsl"), defaults: &[] };
pub const REDUCE: ShaderSrc = ShaderSrc { name: "reduce", src: include_str!("../../shaders/reduce.wgsl"), defaults: &[] };
pub const LOSS: ShaderSrc = ShaderSrc { name: "loss", src: include_str!("../../shaders/loss.wgsl"), defaults: &[] };
pub const OPTIM: ShaderSrc = ShaderSrc { name: "optim", src: include_str!("../../shaders/optim.wgsl"), defaults: &[] };
pub const RNN_FORWARD: ShaderSrc =
    ShaderSrc { name: "rnn_forward", src: include_str!("../../shaders/rnn_forward.wgsl"), defaults: SCAN_DEFAULTS };
pub const RNN_BACKWARD: ShaderSrc =
    ShaderSrc { name: "rnn_backward", src: include_str!("../../shaders/rnn_backward.wgsl"), defaults: SCAN_DEFAULTS };
pub const LSTM: ShaderSrc = ShaderSrc { name: "lstm", src: include_str!("../../shaders/lstm.wgsl"), defaults: SCAN_DEFAULTS };
pub const LSTM_BACKWARD: ShaderSrc =
    ShaderSrc { name: "lstm_backward", src: include_str!("../../shaders/lstm_backward.wgsl"), defaults: SCAN_DEFAULTS };
pub const GRU: ShaderSrc = ShaderSrc { name: "gru", src: include_str!("../../shaders/gru.wgsl"), defaults: SCAN_DEFAULTS };
pub const GRU_BACKWARD: ShaderSrc =
    ShaderSrc { name: "gru_backward", src: include_str!("../../shaders/gru_backward.wgsl"), defaults: SCAN_DEFAULTS };
pub const SCRN: ShaderSrc = ShaderSrc { name: "scrn", src: include_str!("../../shaders/scrn.wgsl"), defaults: &[] };
pub const SCRN_BACKWARD: ShaderSrc = ShaderSrc { name: "scrn_backward", src: include_str!("../../shaders/scrn_backward.wgsl"), defaults: &[] };
pub const EMBED: ShaderSrc = ShaderSrc { name: "embed", src: include_str!("../../shaders/embed.wgsl"), defaults: &[] };
pub const EMBED_GRAD: ShaderSrc = ShaderSrc { name: "embed_grad", src: include_str!("../../shaders/embed_grad.wgsl"), defaults: &[] };
pub const LYAPUNOV: ShaderSrc = ShaderSrc { name: "lyapunov", src: include_str!("../../shaders/lyapunov.wgsl"), defaults: &[("WG", 256)] };
pub const FLOSS: ShaderSrc = ShaderSrc { name: "floss", src: include_str!("../../shaders/floss.wgsl"), defaults: &[("WG", 256)] };
const URNN_DEFAULTS: &[(&str, u32)] = &[("WG", 64), ("USE_WG", 1), ("WSC", 1152)];
/// Files that are no kernel of their own but the front part of others.
pub const PARTS: &[&str] = &["urnn_common", "warp_act", "warp_phys"];
pub const URNN: ShaderSrc =
    ShaderSrc { name: "urnn", src: concat!(include_str!("../../shaders/urnn_common.wgsl"), include_str!("../../shaders/urnn.wgsl")), defaults: URNN_DEFAULTS };
pub const URNN_BACKWARD: ShaderSrc = ShaderSrc {
    name: "urnn_backward",
    src: concat!(include_str!("../../shaders/urnn_common.wgsl"), include_str!("../../shaders/urnn_backward.wgsl")),
    defaults: URNN_DEFAULTS,
};

pub const WARP: ShaderSrc = ShaderSrc { name: "warp", src: concat!(include_str!("../../shaders/warp_act.wgsl"), include_str!("../../shaders/warp.wgsl")), defaults: &[] };
pub const WARP_AR: ShaderSrc = ShaderSrc { name: "warp_ar", src: include_str!("../../shaders/warp_ar.wgsl"), defaults: &[] };
pub const WARP_ROOT: ShaderSrc =
    ShaderSrc { name: "warp_root", src: concat!(include_str!("../../shaders/warp_act.wgsl"), include_str!("../../shaders/warp_phys.wgsl"), include_str!("../../shaders/warp_root.wgsl")), defaults: &[] };

/// Every shader, for validation: a new kernel file must be listed here.
pub const ALL: &[ShaderSrc] = &[GEMM, REDUCE, LOSS, OPTIM, RNN_FORWARD, RNN_BACKWARD, LSTM, LSTM_BACKWARD, GRU, GRU_BACKWARD, SCRN, SCRN_BACKWARD, EMBED, EMBED_GRAD, LYAPUNOV, FLOSS, URNN, URNN_BACKWARD, WARP, WARP_ROOT, WARP_AR];
