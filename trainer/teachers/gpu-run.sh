#!/usr/bin/env bash
# The script that trained multiclass4-resnet-gpu-seed23 (shipped as multiclass4-resnet) and -gpu-seed7 on one lent
# NVIDIA H200 (16 cores; 2026-11-26), run from the repository root as `BUDGET=335 bash trainer/teachers/gpu-run.sh`
# with OUT set to a folder for the results. In parallel: a student distilled from the committed CPU teacher and two
# teachers (seeds 7, 23), 30-epoch schedules, Keras on JAX; every step is the public `emotion-trainer train`.
# Inputs beside the tree (that machine reaches no network): .fer/fer4.tar.gz, a tar.gz of
# fer2013/{train,val}/{happy,sad,surprise,neutral} from ../shared/data (test stays home), and .whl/ holding the
# cp312 wheels keras 3.15.1, namex 0.1.0, optree 0.20.0 (the machine has jax 0.11.2 with CUDA, no TensorFlow).
# LOCAL=1 LOCALSITE=DIR (a jax install) EXTRA="--smoke --width 24" EPOCHS=2 runs it on a CPU as a dry run.
set -uo pipefail
T0=$(date +%s); BUDGET=${BUDGET:-340}
el() { echo $(( $(date +%s) - T0 )); }
[ -n "${LOCAL:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=$PWD:/tmp/site:${LOCALSITE:-} KERAS_BACKEND=jax XLA_PYTHON_CLIENT_MEM_FRACTION=0.15 PYTHONUNBUFFERED=1
mkdir -p /tmp/data /tmp/r && tar -C /tmp/data -xzf .fer/fer4.tar.gz || exit 1
python3 - <<'PY' || exit 1
import jax, keras; print("jax", jax.__version__, jax.devices(), "keras", keras.__version__, keras.backend.backend())
from pathlib import Path
from edge.core.preprocess import PreprocessSpec
from trainer.dataset import DataOptions
from trainer.specs import get_spec
d = DataOptions(Path("/tmp/data/fer2013"), cache_dir=Path("/tmp/r/cache"))
for s in ("train", "val"):
    print(s, d.load(s, get_spec("multiclass4-resnet").labels, PreprocessSpec()).counts())
PY
echo "setup done at $(el) s"
mins=$(python3 -c "print(round(($BUDGET - $(el) - 45) / 60.0, 2))"); echo "each run gets $mins min"
TR="python3 -m trainer train multiclass4-resnet /tmp/data/fer2013 --backbone-weights trainer/pretrained/backbone.weights.h5 --cache /tmp/r/cache --epochs ${EPOCHS:-30} --max-minutes $mins ${EXTRA:-}"
pin() { if [ "$(nproc)" -ge 16 ] && command -v taskset >/dev/null; then echo "taskset -c $1"; fi; }
$(pin 0-5) $TR --seed 1234 --runs /tmp/r/student --teacher trainer/teachers/multiclass4-resnet-seed1234 > /tmp/r/student.log 2>&1 &
$(pin 6-10) $TR --seed 7 --runs /tmp/r/seed7 > /tmp/r/seed7.log 2>&1 &
$(pin 11-15) $TR --seed 23 --runs /tmp/r/seed23 > /tmp/r/seed23.log 2>&1 &
wait
echo "runs done at $(el) s"; tail -n 2 /tmp/r/*.log
python3 -c "
import sys, keras
for p in sys.argv[1:]:
    keras.models.load_model(p, compile=False).save(p)  # the weights without optimizer state (a third of the size)
" /tmp/r/*/multiclass4-resnet/model.keras
for r in student seed7 seed23; do tar -C /tmp/r/$r/multiclass4-resnet -cf $OUT/$r.tar model.keras train.json history.csv; done
tar -C /tmp/r -czf $OUT/logs.tar.gz student.log seed7.log seed23.log
echo "all done at $(el) s"; ls -la $OUT
