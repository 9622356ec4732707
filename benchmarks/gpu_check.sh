#!/usr/bin/env bash
# bash benchmarks/gpu_check.sh [--python python3.11] [--workdir DIR] [--venv DIR] [--samples 2048] [--epochs 2]
#
# GPU check, unattended: on a machine with one or more NVIDIA GPUs (driver installed,
# nvidia-smi in PATH) and a bare Python 3.11. Runtime: estimated 6-8 minutes on one modern GPU after
# the install (not yet measured on one) (pip install of TensorFlow's CUDA wheels: a few minutes more on a fast network;
# --venv reuses an installed one). Steps, each failing loudly with its reason:
#   1. nvidia-smi lists the GPUs; Python is 3.11;
#   2. a fresh venv and `pip install -e '.[gpu]'` of this repository;
#   3. TensorFlow sees as many GPUs as nvidia-smi;
#   4. python -m benchmarks.training with 1 GPU worker: mixed precision on/off x XLA on/off x
#      batch 128 and 512 (8 runs: plain tf_keras fit and Ray Train 1 worker x 1 GPU each);
#   5. with more than one GPU: one Ray Train worker per GPU (batch 128 per worker);
#   6. a 2-fold x 1-configuration sweep of 2 epochs on the synthetic set, --gpus-per-worker 1.
# While each step runs, nvidia-smi samples every GPU's utilisation and memory every 0.5 s.
# Prints one table (benchmarks/gpu_table.py): samples/s of the plain fit and of the Ray worker,
# their ratio, GPU utilisation mean/max, peak GPU memory, wall seconds, status. Exit code 0 when
# every step passed, 1 on the first failure (its reason on stderr and the table so far), 2 on
# bad arguments. Logs, samples and results stay in the work directory (printed at the end).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=python3.11
WORK=""
VENV=""
SAMPLES=2048
EPOCHS=2
TARGET_SECONDS=480

usage() {
  sed -n '2,3p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  echo "  --python P   the Python 3.11 to build the venv with (default python3.11)"
  echo "  --workdir D  where logs, samples and results go (default: a new /tmp/us8k-gpu-check.*)"
  echo "  --venv D     use this existing venv (the project installed with its gpu extra): no install"
  echo "  --samples N  training clips per benchmark run (default 2048); --epochs N timed epochs (default 2)"
}

bad_usage() { echo "gpu_check: $*" >&2; usage >&2; exit 2; }

while (( $# )); do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --python|--workdir|--venv|--samples|--epochs)
      (( $# >= 2 )) || bad_usage "$1 needs a value"
      case "$1" in
        --python) PYTHON=$2 ;;
        --workdir) WORK=$2 ;;
        --venv) VENV=$2 ;;
        --samples|--epochs)
          [[ $2 =~ ^[1-9][0-9]*$ ]] || bad_usage "$1 must be a positive integer, got '$2'"
          if [[ $1 == --samples ]]; then SAMPLES=$2; else EPOCHS=$2; fi ;;
      esac
      shift 2 ;;
    *) bad_usage "unknown argument '$1'" ;;
  esac
done

STEPS=""
STARTED=$(date +%s)

table() {
  if [[ -n $STEPS && -s $STEPS && -n $VENV && -x $VENV/bin/python ]]; then
    (cd "$ROOT" && "$VENV/bin/python" -m benchmarks.gpu_table "$STEPS") || true
  fi
}

fail() {
  echo "gpu_check: FAILED: $*" >&2
  table
  [[ -n $WORK ]] && echo "gpu_check: logs in $WORK" >&2
  exit 1
}

# 1. The machine.
command -v nvidia-smi >/dev/null 2>&1 \
  || fail "nvidia-smi not found in PATH: this check needs a machine with NVIDIA GPUs and their driver installed"
if ! GPU_LIST=$(nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader 2>&1); then
  fail "nvidia-smi failed (driver not loaded?): $GPU_LIST"
fi
NGPU=$(grep -c . <<<"$GPU_LIST")
(( NGPU > 0 )) || fail "nvidia-smi lists no GPU"
echo "gpu_check: $NGPU GPU(s):"; sed 's/^/  /' <<<"$GPU_LIST"

if [[ -z $VENV ]]; then
  command -v "$PYTHON" >/dev/null 2>&1 || fail "'$PYTHON' not found: install Python 3.11 or pass --python PATH"
  PY_VERSION=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>&1) \
    || fail "'$PYTHON' does not run: $PY_VERSION"
  [[ $PY_VERSION == 3.11 ]] || fail "the project needs Python 3.11; '$PYTHON' is $PY_VERSION (pass --python PATH)"
fi

WORK=${WORK:-$(mktemp -d /tmp/us8k-gpu-check.XXXXXX)}
mkdir -p "$WORK" || fail "cannot create the work directory $WORK"
WORK=$(cd "$WORK" && pwd)
STEPS=$WORK/steps.tsv
: > "$STEPS"

# 2. A fresh venv with the project and its gpu extra.
if [[ -z $VENV ]]; then
  VENV=$WORK/venv
  echo "gpu_check: creating $VENV and installing the project with its gpu extra (log: $WORK/install.log)"
  "$PYTHON" -m venv "$VENV" > "$WORK/install.log" 2>&1 \
    || fail "'$PYTHON -m venv' failed (Debian/Ubuntu: apt install python3.11-venv): $(tail -n 3 "$WORK/install.log" | tr '\n' ' ')"
  "$VENV/bin/pip" install -e "$ROOT[gpu]" >> "$WORK/install.log" 2>&1 \
    || fail "pip install -e '.[gpu]' failed: $(tail -n 5 "$WORK/install.log" | tr '\n' ' ')"
else
  [[ -x $VENV/bin/python ]] || fail "--venv $VENV has no bin/python"
fi
PY=$VENV/bin/python

# 3. TensorFlow sees the GPUs.
SEEN=$(cd "$ROOT" && TF_CPP_MIN_LOG_LEVEL=2 "$PY" -c \
  'import tensorflow as tf; print(len(tf.config.list_physical_devices("GPU")))' 2> "$WORK/tf_gpus.log" | tail -n 1)
[[ $SEEN =~ ^[0-9]+$ ]] || fail "TensorFlow did not start: $(tail -n 5 "$WORK/tf_gpus.log" | tr '\n' ' ')"
(( SEEN == NGPU )) || fail "TensorFlow sees $SEEN GPU(s), nvidia-smi lists $NGPU: check the driver version against \
TensorFlow's CUDA (nvidia-smi, pip show nvidia-cudnn-cu12) and $WORK/tf_gpus.log"
echo "gpu_check: TensorFlow sees $SEEN GPU(s)"

export TF_FORCE_GPU_ALLOW_GROWTH=true  # the plain fit and the Ray workers share the GPUs
export TF_CPP_MIN_LOG_LEVEL=2

# run_step NAME JSON|- COMMAND...: runs COMMAND from the repository root with nvidia-smi sampling,
# records a line of steps.tsv, fails the check if COMMAND fails.
run_step() {
  local name=$1 json=$2; shift 2
  local slug; slug=$(tr -c 'a-zA-Z0-9\n' '_' <<<"$name")
  local csv=$WORK/$slug.csv log=$WORK/$slug.log
  echo "gpu_check: $name"
  nvidia-smi --query-gpu=timestamp,index,utilization.gpu,memory.used --format=csv,noheader,nounits \
    -lms 500 > "$csv" 2> /dev/null &
  local sampler=$!
  local start end rc
  start=$(date +%s%N)
  (cd "$ROOT" && "$@") > "$log" 2>&1
  rc=$?
  end=$(date +%s%N)
  kill "$sampler" 2> /dev/null; wait "$sampler" 2> /dev/null
  local reason=""
  (( rc == 0 )) || reason="exit $rc: $(tail -n 3 "$log" | tr '\n\t' '  ')"
  printf '%s\t%d\t%s\t%s\t%s\t%s\n' "$name" "$rc" "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')" "$json" "$csv" "$reason" >> "$STEPS"
  (( rc == 0 )) || fail "step '$name' $reason (log: $log)"
}

BENCH=(-m benchmarks.training --samples "$SAMPLES" --epochs "$EPOCHS" --warmup 1 --no-in-trial --no-micro)
# 4. One GPU worker: batch x mixed precision x XLA.
for batch in 128 512; do
  for mp in off on; do
    for xla in off on; do
      json=$WORK/bench_b${batch}_mp${mp}_xla${xla}.json
      flags=(--workers 1 --gpus-per-worker 1 --batch-size "$batch" --mixed-precision "$mp" --json "$json")
      [[ $xla == on ]] && flags+=(--jit-compile)
      run_step "1 GPU worker, batch $batch, fp16 $mp, XLA $xla" "$json" "$PY" "${BENCH[@]}" "${flags[@]}"
    done
  done
done

# 5. One worker per GPU.
if (( NGPU > 1 )); then
  json=$WORK/bench_${NGPU}workers.json
  run_step "$NGPU GPU workers (1 per GPU), batch 128" "$json" "$PY" "${BENCH[@]}" \
    --workers "$NGPU" --gpus-per-worker 1 --batch-size 128 --mixed-precision auto --json "$json"
fi

# 6. A small sweep on the synthetic set.
run_step "sweep: 2 folds x 1 config, 2 epochs" - "$PY" -m orchestration.cv_sweep --folds 1-2 --epochs 2 \
  --gpus-per-worker 1 --search-space '{"learning_rate": [0.001]}' --tracking-uri "sqlite:///$WORK/mlflow.db" \
  --storage-path "$WORK/ray_results" --cache-dir "$WORK/cache" --name gpu-check --no-log-models

echo
(cd "$ROOT" && "$PY" -m benchmarks.gpu_table "$STEPS") || fail "building the table failed"
ELAPSED=$(( $(date +%s) - STARTED ))
echo "gpu_check: all steps passed in ${ELAPSED} s; logs, nvidia-smi samples and benchmark JSON in $WORK"
(( ELAPSED <= TARGET_SECONDS )) || echo "gpu_check: note: over the ${TARGET_SECONDS} s target (install included)"
exit 0
