#!/usr/bin/env bash
# The GPU checks of issues 11 and 14, prepared as one short run for a session that is lent a device machine
# (its `run` tool: `bash bench/device_checks.sh`, timeout_s 600; the machine's python3 holds a CUDA build of torch,
# and gradfit runs from this tree's src/). Each check has its own time limit, so one that hangs costs only its
# share; everything lands in $OUT (the tool brings it back): device.txt, gpu_step.json (issue 11: the 10^8-row
# full-batch step against the read bandwidth, target <= 1.43x the floor), groups_1e6.json and groups_1e5.json
# (issue 14: the Gpufit benchmark, target >= 10^6 fits/s), sweep.txt (issue 14: sweeps on the GPU), log.txt.
set -u
OUT=${OUT:-device-out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
PY=${PY:-python3}
exec > >(tee "$OUT/log.txt") 2>&1
$PY - <<'PYEOF' | tee "$OUT/device.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print(torch.cuda.get_device_name(0), torch.cuda.get_device_properties(0).total_memory // 2**30, "GiB")
PYEOF
timeout 210 $PY bench/bench_gpu.py --device cuda --rows 100000000 --json "$OUT/gpu_step.json" || echo "bench_gpu: exit $?"
timeout 150 $PY bench/bench_groups.py --device cuda --groups 1000000 --scipy 200 --json "$OUT/groups_1e6.json" \
  || echo "bench_groups 1e6: exit $?"
timeout 60 $PY bench/bench_groups.py --device cuda --groups 100000 --scipy 200 --json "$OUT/groups_1e5.json" \
  || echo "bench_groups 1e5: exit $?"
timeout 150 $PY bench/bench_sweep.py --device cuda --sample 4 --repeats 2 --compiled > "$OUT/sweep.txt" \
  || echo "bench_sweep: exit $?"
echo "done"
