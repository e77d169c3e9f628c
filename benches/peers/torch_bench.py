#!/usr/bin/env python3
"""The longmem bench suite's cases in PyTorch, for `longmem bench --compare`.

Runs the same cases as `longmem bench` (suite version 1) with nn.RNN (tanh),
nn.LSTM and nn.GRU, input width 32, a linear readout to 32 outputs, MSE loss
and Adam on random normal data, plus the Lyapunov loop of a tanh RNN (k = N
tangent vectors, torch.linalg.qr every step), and writes bench.json in the
same schema ("longmem-bench/1"). The SCRN, uRNN and WARP have no PyTorch
module; their cases are left out.

PyTorch is not part of longmem's test suite. It installs from PyPI with
`pip install torch` (large: the Linux wheel pulls in the CUDA libraries, a
few GiB). On a GPU machine pass `--device cuda` (cuDNN is used by nn.RNN/LSTM/GRU
when present); timings are wall clock with torch.cuda.synchronize().

    python3 benches/peers/torch_bench.py --quick --out runs/torch-cpu
    longmem bench --quick --device cpu --out runs/longmem-cpu
    longmem bench --compare runs/torch-cpu runs/longmem-cpu
"""

import argparse
import json
import math
import os
import platform
import statistics
import time

SCHEMA = "longmem-bench/1"
SUITE_VERSION = 1
INPUT, OUTPUT = 32, 32


def parse_sizes(s):
    return [int(p) for p in s.split(",") if p.strip()]


def selection(a):
    full = dict(models=["rnn", "lstm", "gru"], hidden=[128, 256, 512, 1024], batch=[1, 32, 256], seq_len=[256, 1024],
                modes=["forward", "train", "lyapunov"], lyapunov_hidden=[128, 512], lyapunov_batch=[1, 32])
    if a.quick:
        full.update(models=["rnn", "lstm"], hidden=[128], batch=[32], seq_len=[256], lyapunov_hidden=[128], lyapunov_batch=[1])
    for key in ["hidden", "batch", "seq_len", "lyapunov_hidden", "lyapunov_batch"]:
        v = getattr(a, key)
        if v:
            full[key] = parse_sizes(v)
    if a.models:
        full["models"] = [m for m in a.models.split(",") if m]
    if a.modes:
        full["modes"] = [m for m in a.modes.split(",") if m]
    cases = []
    for mode in full["modes"]:
        if mode == "lyapunov":
            cases += [dict(model="rnn", hidden=n, batch=b, seq_len=t, mode=mode)
                      for n in full["lyapunov_hidden"] for b in full["lyapunov_batch"] for t in full["seq_len"]]
        else:
            cases += [dict(model=m, hidden=h, batch=b, seq_len=t, mode=mode)
                      for m in full["models"] for h in full["hidden"] for b in full["batch"] for t in full["seq_len"]]
    return cases


# the same nominal flop counts as src/bench/flops.rs
def forward_per_token(model, h):
    i, o = INPUT, OUTPUT
    readout = 2 * o * h + o
    if model == "rnn":
        return 2 * h * (i + h) + 2 * h + readout
    if model == "lstm":
        return 2 * 4 * h * (i + h) + 4 * h + 10 * h + readout
    if model == "gru":
        return 2 * 3 * h * (i + h) + 3 * h + 10 * h + readout
    raise ValueError(model)


def case_flops(c, params):
    tokens = c["batch"] * c["seq_len"]
    loss = 3 * OUTPUT
    if c["mode"] == "forward":
        return tokens * (forward_per_token(c["model"], c["hidden"]) + loss)
    if c["mode"] == "train":
        return tokens * (3 * forward_per_token(c["model"], c["hidden"]) + 2 * loss) + 12 * params
    n = k = c["hidden"]
    return tokens * (2 * n * (INPUT + n) + 2 * n + 2 * n * n * k + n * k + 2 * (2 * n * k * k - 2 * k ** 3 / 3))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    for flag in ["models", "hidden", "batch", "seq-len", "modes", "lyapunov-hidden", "lyapunov-batch"]:
        ap.add_argument("--" + flag)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--max-case-seconds", type=float, default=30.0)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: PyTorch's default)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()

    import torch  # imported late so --help works without it

    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize()

    results = []
    cases = selection(a)
    for idx, c in enumerate(cases):
        torch.manual_seed(0)
        h, b, t = c["hidden"], c["batch"], c["seq_len"]
        try:
            if c["mode"] == "lyapunov":
                rnn = torch.nn.RNN(INPUT, h, nonlinearity="tanh").to(dev)
                w_in, w, bias = rnn.weight_ih_l0.detach(), rnn.weight_hh_l0.detach(), (rnn.bias_ih_l0 + rnn.bias_hh_l0).detach()
                x = torch.randn(t, b, INPUT, device=dev)
                params = sum(p.numel() for p in rnn.parameters()) + OUTPUT * h + OUTPUT

                def run():
                    hs = 0.5 * torch.randn(b, h, device=dev)
                    q = torch.linalg.qr(torch.randn(b, h, h, device=dev))[0]
                    acc = torch.zeros(b, h, device=dev)
                    for s in range(t):
                        hs = torch.tanh(x[s] @ w_in.T + hs @ w.T + bias)
                        q = (1 - hs * hs).unsqueeze(2) * (w @ q)
                        q, r = torch.linalg.qr(q)
                        acc += torch.log(torch.abs(torch.diagonal(r, dim1=1, dim2=2)))
                    sync()
                    return acc
            else:
                cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[c["model"]]
                rnn = cls(INPUT, h).to(dev)
                head = torch.nn.Linear(h, OUTPUT).to(dev)
                ps = list(rnn.parameters()) + list(head.parameters())
                params = sum(p.numel() for p in ps)
                opt = torch.optim.Adam(ps, lr=1e-3)
                x = torch.randn(t, b, INPUT, device=dev)
                y = torch.randn(t, b, OUTPUT, device=dev)

                if c["mode"] == "train":
                    def run():
                        opt.zero_grad(set_to_none=True)
                        loss = torch.nn.functional.mse_loss(head(rnn(x)[0]), y)
                        loss.backward()
                        opt.step()
                        sync()
                        return loss.item()
                else:
                    def run():
                        with torch.no_grad():
                            loss = torch.nn.functional.mse_loss(head(rnn(x)[0]), y)
                        sync()
                        return loss.item()
            flops = case_flops(c, params)
            for _ in range(a.warmup):
                run()
            times, start = [], time.perf_counter()
            for _ in range(max(1, a.reps)):
                t0 = time.perf_counter()
                run()
                times.append(time.perf_counter() - t0)
                if time.perf_counter() - start > a.max_case_seconds:
                    break
            med = statistics.median(times)
            r = dict(c, status="ok", tokens_per_s=b * t / med, gflops=flops / med * 1e-9, median_s=med,
                     spread_s=max(times) - min(times), wall_median_s=med, reps=len(times), timing="wall-clock",
                     flops=flops, params=params, memory_bytes=None, fraction_of_peak=None)
        except Exception as e:  # a case that cannot run is reported, not fatal
            r = dict(c, status="failed", note=str(e), tokens_per_s=None, gflops=None, median_s=None, spread_s=None)
        results.append(r)
        fig = f"{r['tokens_per_s']:.0f} tokens/s, {r['gflops']:.2f} GFLOP/s" if r["status"] == "ok" else r.get("note")
        print(f"[{idx + 1}/{len(cases)}] {c['model']} H={h} B={b} T={t} {c['mode']}: {fig}", flush=True)

    name = torch.cuda.get_device_name(dev) if cuda else (platform.processor() or platform.machine())
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except Exception:
        cpu = platform.machine()
    if not cuda:
        name = cpu
    backend = f"cuda {torch.version.cuda}, cudnn {torch.backends.cudnn.version()}" if cuda else f"cpu, {torch.get_num_threads()} threads"
    report = dict(
        schema=SCHEMA, suite_version=SUITE_VERSION, tool=f"pytorch {torch.__version__}", commit=None,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        device=dict(engine="cuda" if cuda else "cpu", name=name, backend=backend, device_type="discrete_gpu" if cuda else "cpu",
                    driver="", driver_info="", limits=None, features=[]),
        host=dict(os=platform.system().lower(), arch=platform.machine(), cpu=cpu, cores=os.cpu_count() or 1),
        in_suite=True, reps=a.reps, ceilings=None, cases=results)
    out = a.out or time.strftime("runs/torch-bench-%Y%m%d-%H%M%S")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "bench.json"), "w") as f:
        json.dump(report, f, indent=2)
    print("written:", os.path.join(out, "bench.json"))


if __name__ == "__main__":
    main()
