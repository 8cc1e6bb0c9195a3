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
# train.json, history.csv; a pre-training's backbone.weights.h5, head.npz, train.json and history.csv, the files
# trainer/pretrained/ keeps, without model.keras: at width 32 the tar would pass the 16 MiB a returned file may
# have) goes to $OUT/NAME.tar and its log to $OUT/NAME.log. At most 8 files come back from a call: four lines make
# eight, so write nothing else under $OUT (a ninth is left out). Bring a tar home with `mkdir -p runs/gpu-NAME/SPEC
# && tar -C runs/gpu-NAME/SPEC -xf NAME.tar`, then `emotion-trainer export|evaluate SPEC ../shared/data/fer2013
# --runs runs/gpu-NAME --models /tmp/m --split val` decides (README: Training); a refit cannot be judged on val (it
# trained on it), so it is evaluated on test only. A pre-training's tar unpacks like trainer/pretrained/ (its val
# accuracy is in its train.json).
# Every run goes on record, shipped or not: its train.json and history.csv to trainer/gpu/records/CALL/NAME/, with
# fields of the judged model entry of /tmp/m-NAME/manifest.json as val.json (trainer/gpu/records/README.md), by
# `emotion-trainer record SPEC --runs runs/gpu-NAME --models /tmp/m-NAME --to trainer/gpu/records/CALL/NAME`.
#
# Inputs beside the tree (git-ignored; the machine reaches no network):
#   .fer/fer.tar.gz   the train and val folders of the classes the jobs read (the four of the specs; angry and fear
#                     too when a line pre-trains): `bash trainer/gpu/run.sh --pack JOBS` makes it from
#                     ../shared/data/fer2013 (test stays home)
#   .whl/             cp312 wheels keras 3.15.1, namex 0.1.0, optree 0.20.0 (the machine has jax with CUDA and no
#                     TensorFlow): `pip download --only-binary=:all: --python-version 3.12 --no-deps -d .whl
#                     keras==3.15.1 namex==0.1.0 optree==0.20.0`
# A call carries the working tree and at most 64 MiB in all, which the tree alone passes (shipped models, teachers,
# pre-trainings): `bash trainer/gpu/run.sh --slim JOBS` moves the large tracked files the jobs do not read
# (models/*.tflite, models/report.html, teachers and backbone weights no line names; a refit line names the
# teachers and backbone weights its shipped model learnt from) to .slim/ and prints what will travel; `--unslim`
# puts them back after the call. So a call is
#   bash trainer/gpu/run.sh --pack JOBS && bash trainer/gpu/run.sh --slim JOBS
#   (device) OUT=$OUT BUDGET=555 bash trainer/gpu/run.sh JOBS          carrying .fer and .whl
#   bash trainer/gpu/run.sh --unslim
# The jobs files here are the calls made so far (call2: the gpu- teachers; call3, call4: the distilled students;
# call5: two pre-trainings and a refit; call6: fine-tunes from the width-32 one; call7: one run cut by its time
# limit; call8: 60-epoch fine-tunes, one of them the production model; call9: two more seeds at 45 epochs; call10:
# four ensemble members, brought home as model.keras) and next.jobs, the call planned next. Calls 2-4 ran as a
# script with this set-up and their lines inline, which this runner replaced; every run's train.json (copied into
# the manifest's provenance.command) records the command it ran, and tests/test_gpu_jobs.py checks each shipped
# model against its line.
# Dry run on a CPU: PATH=.venv/bin:$PATH LOCAL=1 LOCALSITE=DIR(a jax install) EXTRA="--smoke" EPOCHS=1 (add
# --width 24 to EXTRA only where no line names a width-32 backbone: those weights do not fit a narrower network)
# (EPOCHS replaces every --epochs of the jobs file). A refit keeps the shipped schedule and takes no --width: dry-run a
# refit line without EXTRA and with a small BUDGET, so that it stops after its first epoch.
set -uo pipefail
if [ "${1:-}" = "--pack" ]; then
  classes=(happy sad surprise neutral)
  grep -qE '^[^#]\S*\s+\S+\s+pretrain\b' "${2:?usage: --pack JOBS_FILE}" && classes+=(angry fear)
  dirs=(); for c in "${classes[@]}"; do dirs+=("fer2013/train/$c" "fer2013/val/$c"); done
  mkdir -p .fer && tar -C "${DATA:-../shared/data}" -czf .fer/fer.tar.gz "${dirs[@]}" && ls -la .fer/fer.tar.gz
  exit
fi
if [ "${1:-}" = "--unslim" ]; then
  [ -d .slim ] && (cd .slim && find . -type f) | while read -r f; do mv ".slim/$f" "$f"; done
  rm -rf .slim; git status --short; exit
fi
if [ "${1:-}" = "--slim" ]; then
  "${PYTHON:-python3}" - "${2:?usage: --slim JOBS_FILE}" <<'PY'
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

shipped = json.loads(Path("models/manifest.json").read_text())["models"]
named = set()
for line in Path(sys.argv[1]).read_text().splitlines():
    words = shlex.split(line) if line.strip() and not line.startswith("#") else []
    if words[2:3] == ["refit"]:  # it reads the teachers and backbone weights the shipped model learnt from
        words += [t["path"] for t in shipped[words[3]]["training"].get("teachers") or []]
        words += shlex.split(shipped[words[3]].get("provenance", {}).get("command", ""))
    named |= {w.rstrip("/") for w in words}
big = [*Path("models").glob("*.tflite"), Path("models/report.html"), *Path("trainer/teachers").glob("*/model.*")]
big += Path("trainer/pretrained").rglob("backbone.weights.h5")
for f in big:
    if f.is_file() and not {str(f), str(f.parent)} & named:
        (Path(".slim") / f.parent).mkdir(parents=True, exist_ok=True)
        shutil.move(f, Path(".slim") / f)
tree = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], capture_output=True, text=True).stdout
files = [Path(f) for f in tree.splitlines()] + [*Path(".fer").glob("*"), *Path(".whl").glob("*")]
mib = sum(f.stat().st_size for f in files if f.is_file()) / 2**20
print(f"moved to .slim/: {sum(1 for _ in Path('.slim').rglob('*') if _.is_file())} files; travels {mib:.1f} MiB "
      f"(limit 64) with .fer and .whl carried")
sys.exit(0 if mib < 64 else 1)
PY
  exit
fi
JOBS=${1:?usage: bash trainer/gpu/run.sh JOBS_FILE | --pack JOBS_FILE | --slim JOBS_FILE | --unslim}
T0=$(date +%s); BUDGET=${BUDGET:-540}; OUT=${OUT:?set OUT to the folder that comes back}
el() { echo $(( $(date +%s) - T0 )); }
[ -n "${LOCAL:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=$PWD:/tmp/site:${LOCALSITE:-} KERAS_BACKEND=jax XLA_PYTHON_CLIENT_MEM_FRACTION=0.12 PYTHONUNBUFFERED=1
mkdir -p "$OUT" /tmp/data /tmp/r && tar -C /tmp/data -xzf .fer/fer.tar.gz || exit 1
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
    sub=pretrain what=() dir=/tmp/r/$name/backbone-pretrain files=(backbone.weights.h5 head.npz train.json history.csv)
  fi
  local args=("$@")
  if [ -n "${EPOCHS:-}" ]; then for i in "${!args[@]}"; do [ "${args[$i]}" = "--epochs" ] && args[i + 1]=$EPOCHS; done; fi
  # shellcheck disable=SC2046,SC2086
  $(pin "$cores") python3 -m trainer "$sub" "${what[@]}" /tmp/data/fer2013 --cache /tmp/r/cache --max-minutes "$mins" \
    --runs "/tmp/r/$name" "${args[@]}" ${EXTRA:-} > "$OUT/$name.log" 2>&1
  echo "$name ended rc=$? at $(el) s"
  [ "$sub" = pretrain ] || python3 -c "import sys, keras; keras.models.load_model(sys.argv[1], compile=False).save(
    sys.argv[1])" "$dir/model.keras" && tar -C "$dir" -cf "$OUT/$name.tar" "${files[@]}"
  echo "$name packed at $(el) s"
}
while read -r -a line; do
  [ ${#line[@]} -gt 0 ] && [[ ${line[0]} != \#* ]] && job "${line[@]}" &
done < "$JOBS"
wait
echo "all done at $(el) s"; ls -la "$OUT"
