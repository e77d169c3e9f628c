#!/usr/bin/env bash
# The GPU checks that issues 5 and 8 still need, as one command that fits a
# short loan of a GPU machine (about 8 minutes of commands): the H100 bench
# cases against PyTorch/cuDNN, and throughput and early loss of the uRNN
# runs that were too slow for a 2-core CPU (adding T = 400, MNIST N = 512).
#
#   benches/gpu-session.sh BINARY OUT [--smoke]
#
# BINARY is a release build of longmem made on the development machine (the
# GPU machine has no Rust). OUT receives session.log, compare.txt and
# session.tgz (every report and run directory), three files in all.
# --smoke runs the same steps at toy sizes, to check the script itself on
# lavapipe or any adapter.
#
# Preparing a loan (once, in the repository root on the development machine):
#   echo /.gl/ >> .git/info/exclude; echo /.gpu/ >> .git/info/exclude
#   mkdir -p .gl /tmp/amd64/partial .gpu
#   o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
#   apt-get $o update; (cd .gl && apt-get $o download libvulkan1)
#   cargo build --release && cp target/release/longmem .gpu/
#   mkdir -p .gpu/mnist && cp ../shared/data/mnist/* .gpu/mnist/   # ../shared does not travel
# and then the device command, carrying .gl and .gpu:
#   for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig;
#   export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json;
#   bash benches/gpu-session.sh .gpu/longmem $OUT
set -uo pipefail

BIN=${1:?usage: benches/gpu-session.sh BINARY OUT [--smoke]}
OUT=${2:?usage: benches/gpu-session.sh BINARY OUT [--smoke]}
SMOKE=${3:-}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-session.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
LOG="$OUT/session.log"
: > "$LOG"

say() { echo "== $(date +%T) $*" | tee -a "$LOG"; }
# step SECONDS NAME COMMAND...: run with a time cap, log its tail and status
step() {
    local secs=$1 name=$2
    shift 2
    say "$name (at most ${secs}s): $*"
    local t0=$SECONDS
    timeout "$secs" "$@" > "$WORK/$name.out" 2>&1
    local rc=$?
    tail -n 25 "$WORK/$name.out" >> "$LOG"
    say "$name: exit $rc after $((SECONDS - t0))s$([ $rc = 124 ] && echo ' (time cap reached)')"
}

if [ "$SMOKE" = --smoke ]; then
    HIDDEN=16; BATCH=4; SEQ=16; LYAP=8; REPS=2; CASE_S=2
    ADD_ARGS=(--seq-len 20 --hidden 16 --batch 4 --steps 20)
    MNIST_ARGS=(--hidden 16 --batch 4 --steps 3 --train-examples 200)
    TRAIN_S=60
else
    HIDDEN=128,256,512; BATCH=32,64; SEQ=256; LYAP=128,512; REPS=5; CASE_S=10
    ADD_ARGS=(--seq-len 400 --hidden 512 --batch 20 --steps 100000)
    MNIST_ARGS=(--hidden 512 --batch 20 --steps 100000)
    TRAIN_S=120
fi
DATA=${LONGMEM_MNIST:-}
for d in .gpu/mnist ../shared/data/mnist; do
    [ -z "$DATA" ] && [ -d "$d" ] && DATA=$d
done

step 30 info "$BIN" info
# issue 8: the tanh RNN and LSTM at H <= 512, B <= 64, T = 256, and Lyapunov spectra
step 240 bench "$BIN" bench --device gpu --models rnn,lstm --hidden "$HIDDEN" --batch "$BATCH" \
    --seq-len "$SEQ" --modes forward,train,lyapunov --lyapunov-hidden "$LYAP" --lyapunov-batch 1 \
    --reps "$REPS" --max-case-seconds "$CASE_S" --out "$WORK/longmem"
if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2> /dev/null; then
    step 180 torch python3 benches/peers/torch_bench.py --device cuda --models rnn,lstm --hidden "$HIDDEN" \
        --batch "$BATCH" --seq-len "$SEQ" --modes forward,train,lyapunov --lyapunov-hidden "$LYAP" \
        --lyapunov-batch 1 --reps "$REPS" --max-case-seconds "$CASE_S" --out "$WORK/torch"
    "$BIN" bench --compare "$WORK/torch" "$WORK/longmem" > "$OUT/compare.txt" 2>&1
else
    say "torch: skipped (no PyTorch with CUDA here)"
    echo "no PyTorch with CUDA on this machine: no comparison" > "$OUT/compare.txt"
fi
# issue 5: how fast the uRNN runs are on this GPU and where their loss is
# after a couple of minutes; their run directories come back in session.tgz
# for a later loan to continue (--resume DIR)
step "$TRAIN_S" adding400 "$BIN" train --task adding --model urnn "${ADD_ARGS[@]}" --device gpu --out "$WORK/adding400"
if [ -n "$DATA" ]; then
    step "$TRAIN_S" mnist512 "$BIN" train --task mnist --data "$DATA" --model urnn "${MNIST_ARGS[@]}" --device gpu --out "$WORK/mnist512"
else
    say "mnist512: skipped (no MNIST folder: .gpu/mnist, ../shared/data/mnist or LONGMEM_MNIST)"
fi
tar czf "$OUT/session.tgz" -C "$WORK" . 2>> "$LOG"
say "done: $OUT/session.log, $OUT/compare.txt, $OUT/session.tgz"
