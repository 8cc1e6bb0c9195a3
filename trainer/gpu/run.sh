#!/usr/bin/env bash
# Train several runs side by side on one lent GPU machine (16 cores, no network) with the public CLI, Keras on JAX.
#
#   OUT=DIR BUDGET=SECONDS bash trainer/gpu/run.sh trainer/gpu/JOBS.jobs     (from the repository root)
#
# JOBS.jobs holds one run per line: `NAME CORES SPEC ARGS...`, `NAME CORES refit SPEC ARGS...` or
# `NAME CORES pretrain ARGS...`; each becomes
#   taskset -c CORES python3 -m trainer train SPEC /tmp/data/fer2013 --cache /tmp/r/cache --max-minutes M
#       --runs /tmp/r/NAME ARGS...
# where M splits what BUDGET leaves after set-up; a refit line runs `trainer refit SPEC ...` (the shipped SPEC's
# recorded run again on train + val, read from the tree's models/manifest.json and models/reports/, written to
# /tmp/r/NAME/refit/SPEC), a pretrain line `trainer pretrain ...` (the six-class backbone pre-training, written
# to /tmp/r/NAME/backbone-pretrain). As each run ends its folder (model.keras re-saved without the optimizer state,
# train.json, history.csv; a pre-training's backbone.weights.h5 and head.npz too) goes to $OUT/NAME.tar and its log
# to $OUT/NAME.log. Bring a tar home with `mkdir -p runs/gpu-NAME/SPEC && tar -C runs/gpu-NAME/SPEC -xf NAME.tar`,
# then `emotion-trainer export|evaluate SPEC ../shared/data/fer2013 --runs runs/gpu-NAME --models /tmp/m --split
# val` decides (README: Training); a refit cannot be judged on val (it trained on it), so it is evaluated on test
# only. A pre-training's tar unpacks like trainer/pretrained/ (its val accuracy is in its train.json).
#
# Inputs beside the tree (git-ignored; the machine reaches no network):
#   .fer/fer6.tar.gz  the train and val folders of the six pre-training classes (the four of the specs, angry,
#                     fear): `bash trainer/gpu/run.sh --pack` makes it from ../shared/data/fer2013 (test stays home)
#   .whl/             cp312 wheels keras 3.15.1, namex 0.1.0, optree 0.20.0 (the machine has jax with CUDA and no
#                     TensorFlow): `pip download --only-binary=:all: --python-version 3.12 --no-deps -d .whl
#                     keras==3.15.1 namex==0.1.0 optree==0.20.0`
# The jobs files here are the calls made so far (call2: the gpu- teachers; call3, call4: the other shipped models)
# and next.jobs, the call planned next. Each call made so far ran as a script with this set-up and its lines
# inline, which this runner replaced; every run's train.json (copied into the manifest's provenance.command) records
# the command it ran, and tests/test_gpu_jobs.py checks each shipped model against its line.
# Dry run on a CPU: PATH=.venv/bin:$PATH LOCAL=1 LOCALSITE=DIR(a jax install) EXTRA="--smoke --width 24" EPOCHS=1
# (EPOCHS replaces every --epochs of the jobs file). A refit keeps the shipped schedule and takes no --width: dry-run a
# refit line without EXTRA and with a small BUDGET, so that it stops after its first epoch.
set -uo pipefail
if [ "${1:-}" = "--pack" ]; then
  mkdir -p .fer && tar -C "${DATA:-../shared/data}" -czf .fer/fer6.tar.gz \
    fer2013/{train,val}/{happy,sad,surprise,neutral,angry,fear} && ls -la .fer/fer6.tar.gz
  exit
fi
JOBS=${1:?usage: bash trainer/gpu/run.sh JOBS_FILE | --pack}
T0=$(date +%s); BUDGET=${BUDGET:-540}; OUT=${OUT:?set OUT to the folder that comes back}
el() { echo $(( $(date +%s) - T0 )); }
[ -n "${LOCAL:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=$PWD:/tmp/site:${LOCALSITE:-} KERAS_BACKEND=jax XLA_PYTHON_CLIENT_MEM_FRACTION=0.12 PYTHONUNBUFFERED=1
mkdir -p "$OUT" /tmp/data /tmp/r && tar -C /tmp/data -xzf .fer/fer6.tar.gz || exit 1
# the dataset caches first, one writer per class set (the runs then only read them)
mapfile -t SPECS < <(awk 'NF && $1 !~ /^#/ {print ($3 == "refit" ? $4 : $3 == "pretrain" ? "backbone-pretrain" : $3)}' \
  "$JOBS" | sort -u)
python3 - "${SPECS[@]}" <<'PY' || exit 1
import sys
from pathlib import Path

import keras

from edge.core.preprocess import PreprocessSpec
from trainer.dataset import DataOptions
from trainer.specs import get_spec, pretrain_spec

print("keras", keras.__version__, keras.backend.backend())
d = DataOptions(Path("/tmp/data/fer2013"), cache_dir=Path("/tmp/r/cache"))
for name in sys.argv[1:]:
    for split in ("train", "val"):
        labels = (pretrain_spec() if name == "backbone-pretrain" else get_spec(name)).labels
        print(name, split, d.load(split, labels, PreprocessSpec()).counts())
PY
mins=$(python3 -c "print(round(($BUDGET - $(el) - 40) / 60.0, 2))"); echo "set-up done at $(el) s; each run gets $mins min"
pin() { if [ "$(nproc)" -ge 16 ] && command -v taskset >/dev/null; then echo "taskset -c $1"; fi; }
job() {  # NAME CORES SPEC ARGS... | NAME CORES refit SPEC ARGS... | NAME CORES pretrain ARGS...
  local name=$1 cores=$2 spec=$3 sub=train dir files=(model.keras train.json history.csv); shift 3
  if [ "$spec" = refit ]; then sub=refit spec=$1; shift; fi
  dir=/tmp/r/$name/$spec; [ "$sub" = refit ] && dir=/tmp/r/$name/refit/$spec
  local what=("$spec")  # the CLI's positional SPEC; pretrain has none
  if [ "$spec" = pretrain ]; then
    sub=pretrain what=() dir=/tmp/r/$name/backbone-pretrain; files+=(backbone.weights.h5 head.npz)
  fi
  local args=("$@")
  if [ -n "${EPOCHS:-}" ]; then for i in "${!args[@]}"; do [ "${args[$i]}" = "--epochs" ] && args[i + 1]=$EPOCHS; done; fi
  # shellcheck disable=SC2046,SC2086
  $(pin "$cores") python3 -m trainer "$sub" "${what[@]}" /tmp/data/fer2013 --cache /tmp/r/cache --max-minutes "$mins" \
    --runs "/tmp/r/$name" "${args[@]}" ${EXTRA:-} > "$OUT/$name.log" 2>&1
  echo "$name ended rc=$? at $(el) s"
  python3 -c "import sys, keras; keras.models.load_model(sys.argv[1], compile=False).save(sys.argv[1])" \
    "$dir/model.keras" && tar -C "$dir" -cf "$OUT/$name.tar" "${files[@]}"
  echo "$name packed at $(el) s"
}
while read -r -a line; do
  [ ${#line[@]} -gt 0 ] && [[ ${line[0]} != \#* ]] && job "${line[@]}" &
done < "$JOBS"
wait
echo "all done at $(el) s"; ls -la "$OUT"
