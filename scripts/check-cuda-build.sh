#!/usr/bin/env bash
# Checks that phyvae builds with candle's CUDA backend (`--features phyvae-model/cuda`) on a
# machine without a GPU or a CUDA toolkit: the compiler (nvcc 13.4, its headers and NVVM) comes
# from NVIDIA's PyPI wheels, and the libraries the linker needs (the driver's libcuda and the
# cuBLAS, cuRAND, NVRTC libraries) are replaced by stubs that export the names cudarc binds.
# The binary this builds is for a build check only: on a GPU machine, build with the real CUDA
# toolkit and driver instead (`cargo build --release --features phyvae-model/cuda`).
#
# Why these versions: cudarc 0.19.10 (through candle 0.11.1) accepts CUDA <= 13.4; a 13.4 PTX
# needs an NVIDIA driver of the R580 series or newer. CUDA_COMPUTE_CAP (default 80) replaces
# the detection of a GPU. About 120 MB of wheels; the kernels take about 6 minutes to compile
# on 2 cores, the whole build about 13.
#
# Usage: scripts/check-cuda-build.sh
# Environment (optional): CUDA_PIP_DIR (default target/cuda-pip), CUDA_COMPUTE_CAP (80),
# CARGO_TARGET_DIR (default target/cuda-build).
set -euo pipefail
cd "$(dirname "$0")/.."
ct=${CUDA_PIP_DIR:-target/cuda-pip}
mkdir -p "$ct"
ct=$(cd "$ct" && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$(pwd)/target/cuda-build}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-80}

cargo fetch
if [ ! -x "$ct/venv/bin/python" ]; then
  python3 -m venv "$ct/venv"
fi
"$ct/venv/bin/pip" install --quiet --disable-pip-version-check "nvidia-cuda-nvcc==13.4.92" \
  "nvidia-cuda-runtime==13.4.92" "nvidia-cuda-crt==13.4.92" "nvidia-nvvm==13.4.92" \
  "nvidia-cuda-cccl==13.3.5.0.6"
site=$("$ct/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
export CUDA_ROOT="$site/nvidia/cu13"
cudarc=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.10 | head -1)

# Stub libraries: one `int name(void)` per function cudarc declares, with the real soname.
stubs="$CUDA_ROOT/lib/stubs"
mkdir -p "$stubs" "$ct/stub-src"
stub() { # module, library, soname
  grep -oE '^pub unsafe fn [A-Za-z_][A-Za-z0-9_]*' "$cudarc/src/$1/sys/mod.rs" \
    | awk '{print "int " $4 "(void) { return 1; }"}' | sort -u >"$ct/stub-src/$2.c"
  gcc -shared -fPIC -Wl,-soname,"$3" -o "$stubs/$2.so" "$ct/stub-src/$2.c"
}
stub driver libcuda libcuda.so.1
stub cublas libcublas libcublas.so.13
stub cublaslt libcublasLt libcublasLt.so.13
stub curand libcurand libcurand.so.10
stub nvrtc libnvrtc libnvrtc.so.13
ln -sf libcudart.so.13 "$CUDA_ROOT/lib/libcudart.so"

export PATH="$CUDA_ROOT/bin:$PATH"
nvcc --version | tail -2
cargo build --release -p phyvae-cli --features phyvae-model/cuda
echo "built $CARGO_TARGET_DIR/release/phyvae with the CUDA backend (compute capability $CUDA_COMPUTE_CAP)"
