#!/usr/bin/env bash
# Build .venv-fer: the `fer` package (the usual pip answer for facial-emotion recognition), layered on
# .venv so it reuses that environment's TensorFlow and emotion-edge, for the peer comparisons:
#   bash tests/bench/fer-env.sh
#   .venv-fer/bin/emotion-edge bench --faces 1 --compare-fer              # FPS on the same frames
#   .venv-fer/bin/emotion-trainer compare-fer ../shared/data/fer2013     # accuracy on the same test faces
# fer 22.5.1 is its last release that runs without PyTorch (Haar cascade + Keras mini-Xception). Its Haar
# cascade needs OpenCV 4's cv2.data, so .venv-fer carries opencv-contrib-python-headless<5, which shadows
# .venv's OpenCV 5 in this environment only; moviepy<2 keeps the `moviepy.editor` module fer imports.
# pip warns that fer's other declared requirements (keras, matplotlib, facenet-pytorch, ...) are missing:
# Keras comes from .venv's TensorFlow, and the rest are only used by fer's video and MTCNN paths.
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ -x .venv/bin/python ]] || { echo "error: .venv is missing; fix: run 'bash tests/run.sh' first" >&2; exit 2; }
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
numpy=$(.venv/bin/python -c 'import numpy; print(numpy.__version__)')
[[ -x .venv-fer/bin/python ]] || .venv/bin/python -m venv .venv-fer
fer_site=$(.venv-fer/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
.venv-fer/bin/python -m pip install -q --no-deps fer==22.5.1
.venv-fer/bin/python -m pip install -q "numpy==$numpy" "opencv-contrib-python-headless<5" "moviepy<2" pandas tqdm Pillow requests "setuptools<81"
# Layer: .venv's packages come after .venv-fer's own on sys.path.
echo "import site; site.addsitedir('$site')" > "$fer_site/zz-emotion-edge-venv.pth"
for pair in emotion-edge:edge emotion-trainer:trainer; do  # console command : module
    cmd=${pair%%:*}
    printf '#!/bin/sh\nexec "%s/.venv-fer/bin/python" -m %s "$@"\n' "$PWD" "${pair#*:}" > ".venv-fer/bin/$cmd"
    chmod +x ".venv-fer/bin/$cmd"
done
.venv-fer/bin/python -c 'import cv2, edge, fer; from importlib.metadata import version; print("ready: fer", version("fer"), "with OpenCV", cv2.__version__, "in .venv-fer")'
