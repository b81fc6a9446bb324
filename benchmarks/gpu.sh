#!/usr/bin/env bash
# The Ped2 GPU benchmark, in steps that fit a remote GPU job (10 minutes a command, 64 MiB carried a call).
# Ped2 (about 110 MiB) travels in parts; each GPU call carries one part and merges it into /tmp/ped2.
#
#   here:   bash benchmarks/gpu.sh pack                  # split ../shared/data/ped2 into .data/ped2_parts/part<N>
#   there:  bash benchmarks/gpu.sh stage .data/ped2_parts/part1     # one call per part (carry that folder)
#   there:  bash benchmarks/gpu.sh bench mnad_pred mnad_recon memae # resumable; results in $OUT and benchmarks/results
#   there:  bash benchmarks/gpu.sh profile mnad_pred                # torch.profiler tables into $OUT
#
# Environment: OUT (the job's output folder, default benchmarks/results/gpu_out), TAG (default h100),
# SEEDS (3), EPOCHS (default: each preset's, the paper's), MINUTES (8.5: no run is started that would end
# later), CHUNKS ("16 256": further batched test.chunk sizes scored; "" for none), PYTHON (python3),
# MEMAD_GIT_COMMIT (the commit, when the copy there has no .git), EXTRA (more bench.py arguments,
# word-split: e.g. EXTRA="--set data.image_size=64 --set train.max_steps_per_epoch=5" for a quick check).
# See benchmarks/README.md for the whole sequence and what to copy back after each call.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
OUT=${OUT:-benchmarks/results/gpu_out}
TAG=${TAG:-h100}
SEEDS=${SEEDS:-3}
MINUTES=${MINUTES:-8.5}
DATA=${DATA:-/tmp/ped2}
PARTS=.data/ped2_parts
export PYTHONUNBUFFERED=1

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

install_memad() {
    # No package index there: install this checkout alone (its dependencies are in the image).
    if ! "$PYTHON" -c "import memad, memad_plugins" 2>/dev/null; then
        "$PYTHON" -m pip install -q --no-deps --no-build-isolation --no-index -e . \
            || { echo "gpu.sh: could not install memad from $(pwd)" >&2; exit 1; }
    fi
    "$PYTHON" - <<'EOF'
import torch, memad
print(f"gpu.sh: memad {memad.__version__}, torch {torch.__version__}, "
      f"CUDA {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'NOT AVAILABLE'}")
EOF
}

check_data() {
    # Counts from ../shared/data/README.md: 16 + 12 videos, 2,550 + 2,010 frames, 2,010 masks, ped2.mat.
    local train test masks
    train=$(find "$DATA/training/frames" -name '*.jpg' 2>/dev/null | wc -l)
    test=$(find "$DATA/testing/frames" -name '*.jpg' 2>/dev/null | wc -l)
    masks=$(find "$DATA/testing/masks" -name '*.png' 2>/dev/null | wc -l)
    if [[ $train -ne 2550 || $test -ne 2010 || $masks -ne 2010 || ! -f $DATA/ped2.mat ]]; then
        echo "gpu.sh: $DATA is incomplete: $train/2550 training frames, $test/2010 test frames, $masks/2010 masks," \
             "ped2.mat $([[ -f $DATA/ped2.mat ]] && echo present || echo missing); stage the remaining parts" >&2
        return 1
    fi
    echo "gpu.sh: $DATA complete (2550 training frames, 2010 test frames and masks, ped2.mat)"
}

cmd=${1:-}
[[ -n $cmd ]] || usage
shift
case $cmd in
pack)
    # Here, beside ../shared: whole video folders into parts of at most 40 MiB (the carry limit is 64 MiB a call).
    src=${1:-../shared/data/ped2}
    if [[ ! -d $src/training/frames || ! -d $src/testing/frames ]]; then
        echo "gpu.sh: $src is not the Ped2 folder (no training/frames and testing/frames)" >&2
        exit 2
    fi
    grep -qxF '/.data/' .gitignore || { echo "gpu.sh: .data/ must be git-ignored (see .gitignore)" >&2; exit 2; }
    rm -rf "$PARTS"
    "$PYTHON" - "$src" "$PARTS" <<'EOF'
import shutil, sys
from pathlib import Path
src, dst, cap = Path(sys.argv[1]), Path(sys.argv[2]), 40 * 2**20
units = [p for kind in ("training/frames", "testing/frames", "testing/masks") for p in sorted((src / kind).iterdir())]
units.append(src / "ped2.mat")
part, size = 1, 0
for unit in units:
    n = sum(f.stat().st_size for f in unit.rglob("*")) if unit.is_dir() else unit.stat().st_size
    if size and size + n > cap:
        part, size = part + 1, 0
    target = dst / f"part{part}" / unit.relative_to(src)
    target.parent.mkdir(parents=True, exist_ok=True)
    (shutil.copytree if unit.is_dir() else shutil.copy2)(unit, target)
    size += n
for p in sorted(dst.iterdir()):
    mib = sum(f.stat().st_size for f in p.rglob("*")) / 2**20
    print(f"gpu.sh: {p} {mib:.1f} MiB")
EOF
    ;;
stage)
    # There: merge one carried part into $DATA (kept while the machine stays warm).
    part=${1:?stage needs the carried part folder, e.g. .data/ped2_parts/part1}
    [[ -d $part ]] || { echo "gpu.sh: $part not found: name it in the call's carry" >&2; exit 2; }
    mkdir -p "$DATA"
    cp -r "$part"/. "$DATA"/
    echo "gpu.sh: staged $part into $DATA"
    check_data || true
    ;;
bench)
    check_data
    install_memad
    mkdir -p "$OUT"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/nvidia_smi.csv" 2>&1 || true
    presets=("$@")
    [[ ${#presets[@]} -gt 0 ]] || presets=(mnad_pred mnad_recon memae)
    args=(--data "$DATA" --presets "${presets[@]}" --seeds "$SEEDS" --tag "$TAG" --copy-to "$OUT"
          --max-minutes "$MINUTES")
    [[ -z ${EPOCHS:-} ]] || args+=(--epochs "$EPOCHS")
    # shellcheck disable=SC2206  # a list of sizes
    [[ -z ${CHUNKS-16 256} ]] || args+=(--chunks ${CHUNKS-16 256})
    # shellcheck disable=SC2206  # EXTRA is a list of arguments on purpose
    args+=(${EXTRA:-})
    "$PYTHON" benchmarks/bench.py "${args[@]}" 2>&1 | tee "$OUT/bench_$TAG.log"
    ;;
profile)
    check_data
    install_memad
    mkdir -p "$OUT"
    presets=("$@")
    [[ ${#presets[@]} -gt 0 ]] || presets=(mnad_pred)
    # shellcheck disable=SC2086
    "$PYTHON" benchmarks/bench.py --data "$DATA" --presets "${presets[@]}" --tag "$TAG" --copy-to "$OUT" \
        --profile-only ${EXTRA:-} 2>&1 | tee "$OUT/profile_$TAG.log"
    ;;
*)
    usage
    ;;
esac
