#!/usr/bin/env bash
# Build the separate environment bench/vs_nncodec.py runs in: bench/.venv-nncodec.
#
#   bash bench/nncodec_env.sh
#   bench/.venv-nncodec/bin/python bench/vs_nncodec.py --help
#
# NNCodec (the MPEG NNC reference codec, sdist nncodec-2.1.3 with the DeepCABAC C++ extension) is
# never a dependency of rdcompress. The venv sees the system site-packages, so it uses the
# installed torch (CPU) and rdcompress; nncodec goes in with --no-deps because its metadata pins
# numpy<2 and asks for torchvision, opencv, pandas, torchmetrics and ptflops, none of which the
# codec path needs: torchvision and cv2 are stubbed by bench/_torchvision_stub, which the bench
# appends to sys.path itself. Added with --no-deps: h5py (imported by nncodec.nnc_core), pandas
# with pytz and tzdata (imported at module level by nncodec's dataset helpers) and zstandard (a
# bench baseline). Building the extension takes about ten minutes on two cores.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-nncodec"
python="${PYTHON:-python}"
nncodec_version="2.1.3"

torch_before="$("$python" -c 'import torch; print(torch.__version__)')"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv --system-site-packages "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)

# Build requirements of the sdist, installed into the venv so the build can skip isolation.
"${pip[@]}" install --no-deps "pybind11>=2.6.2" wheel
"${pip[@]}" install --no-deps --no-build-isolation "nncodec==$nncodec_version"
"${pip[@]}" install --no-deps h5py pandas pytz tzdata zstandard

torch_after="$("$venv/bin/python" -c 'import torch; print(torch.__version__)')"
if [ "$torch_before" != "$torch_after" ]; then
    echo "error: torch changed from $torch_before to $torch_after in $venv;" \
         "delete $venv and report this (nothing may pull another torch)" >&2
    exit 1
fi
echo "torch in $venv: $torch_after (unchanged)"
"$venv/bin/python" -c 'import sys; sys.path.append(sys.argv[1]); import nncodec.nnc
import nncodec.extensions.deepCABAC as d; print("nncodec imports:", d.__file__)' "$here/_torchvision_stub"
