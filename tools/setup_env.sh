#!/usr/bin/env bash
# Creates .venv/ at the checkout's root and installs the verified CPU stack:
# torch (CPU), mmengine, mmcv built from source with its compiled ops, mmdet, mmseg,
# the test tools, the deploy extra (onnx, onnxruntime, onnxscript) and mwam_mm
# itself (editable). Exact versions: requirements/constraints.txt.
#
# Idempotent: a second run checks a stamp (hash of the requirement files and setup.py)
# and an import, and returns in seconds. The mmcv build (~23 min on 2 cores) lands in
# pip's wheel cache, so even a rebuilt venv reuses it on the same machine.
#
# Environment: PYTHON (default python3.11, else python3), MWAM_VENV (default .venv).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
venv=${MWAM_VENV:-$root/.venv}
req=$root/requirements
if [ -z "${PYTHON:-}" ]; then
  PYTHON=$(command -v python3.11 || command -v python3)
fi

stamp=$venv/.mwam_mm-setup-stamp
want=$(cat "$req"/*.txt setup.py | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
   "$venv/bin/python" -c 'import mwam_mm' >/dev/null 2>&1; then
  echo "[setup_env] $venv is up to date"
  exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "[setup_env] creating $venv with $PYTHON"
  "$PYTHON" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --constraint "$req/constraints.txt")

echo "[setup_env] build tools and torch"
"${pip[@]}" -r "$req/build.txt"

if ! "$venv/bin/python" -c 'import mmcv.ops' >/dev/null 2>&1; then
  # mmcv 2.1.0 ships only a source tarball on PyPI; its setup.py must see the installed
  # torch, hence no build isolation. The first build takes ~23 min on 2 cores; pip caches
  # the wheel, so later installs on this machine take seconds.
  echo "[setup_env] mmcv with compiled ops (built once per machine, 11-23 min; then cached)"
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
    "${pip[@]}" --no-build-isolation mmcv
fi

echo "[setup_env] OpenMMLab, test tools, the deploy extra (ONNX), mwam_mm"
"${pip[@]}" -r "$req/runtime.txt" -r "$req/tests.txt" -r "$req/deploy.txt"
"${pip[@]}" --no-build-isolation --no-deps -e .

"$venv/bin/python" -c 'import mwam_mm, mmcv.ops, onnxruntime; print("[setup_env] ready:", mwam_mm.__version__)'
echo "$want" >"$stamp"
