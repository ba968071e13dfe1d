#!/usr/bin/env bash
# The GPU checklist (issue 17.6), one script for a lent GPU machine: the target in fp16/bf16
# with its cost curve, a bench=smoke grid at the published and automatic budgets with its
# report, and a short `make bench` (roofline, our AR against transformers' generate in the
# same dtype). Logs and one tarball of the run folders (written under $WORK) go to $RESULTS
# (default benchmarks/gpu-run). Each step has its own time limit, so one slow step cannot take the rest.
# STEPS picks steps: on an H200 the bench alone took 423 s for two drafters (its two cost curves
# 100 s, benchmarks/nvidia-h200-16t/2026-11-28-cudnn-per-model), more than 15 device minutes
# leave beside the other steps.
#
#   RESULTS=/tmp/out bash benchmarks/gpu_checklist.sh
#   STEPS=bench BENCH_SECONDS=500 RESULTS=/tmp/out bash benchmarks/gpu_checklist.sh
set -u
PY=${PY:-python3}
RESULTS=${RESULTS:-benchmarks/gpu-run}
WORK=${WORK:-$RESULTS/work}
DTYPE_SECONDS=${DTYPE_SECONDS:-150}
GRID_SECONDS=${GRID_SECONDS:-330}
BENCH_SECONDS=${BENCH_SECONDS:-450}
STEPS=${STEPS:-dtypes grid bench}
mkdir -p "$RESULTS" "$WORK"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1
step() {  # step <name> <seconds> <command...>: log to $RESULTS/<name>.log, note the exit code
    local name=$1 seconds=$2
    shift 2
    case " $STEPS " in *" $name "*) ;; *) return ;; esac
    local start=$SECONDS
    timeout "$seconds" "$@" >"$RESULTS/$name.log" 2>&1
    echo "$name: exit $? after $((SECONDS - start)) s" | tee -a "$RESULTS/steps.txt"
}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; "$PY" -c \
  'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'; } \
  >"$RESULTS/machine.txt" 2>&1
step dtypes "$DTYPE_SECONDS" "$PY" -m benchmarks.dtype_check --dtypes float16,bfloat16 wandb.mode=disabled
step grid "$GRID_SECONDS" "$PY" -m spec_bench.reproduce --bench smoke --drafters pld,rest,lookahead,hd \
    --temperatures 0 --budgets paper,auto --out "$WORK/runs" wandb.mode=disabled
step bench "$BENCH_SECONDS" "$PY" -m benchmarks.engine_vs_generate --skip-compile --timing-repeats 0 \
    --rounds 1 --confirm-rounds 2 --drafters pld,hd --budgets 8,32 --prompts 6 --max-new-tokens 64 \
    --out "$WORK/bench" wandb.mode=disabled
tar -czf "$RESULTS/runs.tar.gz" -C "$WORK" runs bench 2>/dev/null
