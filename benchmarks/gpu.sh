#!/usr/bin/env bash
# The GPU paths end to end, timed: every generator at 64x64 RGB in fp32 and bf16, torch.compile,
# torchrun (NCCL, SyncBatchNorm) with --resume, generate, train-detector (also under torchrun)
# and detect, on photograph patches cut from scikit-learn's sample images.
#   OUT=results-folder bash benchmarks/gpu.sh          (on a CUDA machine, in the repository root)
#   DEV=cpu EP=1 NP=128 OUT=/tmp/x bash benchmarks/gpu.sh   (a quick dry run of the script on CPU)
# Results: benchmarks/results/gpu/ (log.txt is this script's output).
export PYTHONUNBUFFERED=1
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
OUT=${OUT:?set OUT to a folder for log.txt}; mkdir -p "$OUT"
LOG=$OUT/log.txt
W=$(mktemp -d)  # patches, runs, fakes, detectors, per-step output
exec > >(tee -a $LOG) 2>&1
F="python3 -m forensics"
DEV=${DEV:-cuda}; EP=${EP:-3}
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python3 -c "import torch, diffusers, sklearn; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'diffusers', diffusers.__version__, 'sklearn', sklearn.__version__, 'gpu', torch.cuda.is_available() and torch.cuda.get_device_name())"
uptime
export W
python3 - <<'PY'
import time, sys
sys.path.insert(0, "tests")
from pathlib import Path
from conftest import photo_patches
t = time.perf_counter()
import os; n = int(os.environ.get("NP", 4096))
photo_patches(Path(os.environ["W"], "p64"), n, (3, 64, 64))
photo_patches(Path(os.environ["W"], "p32"), n // 2, (3, 32, 32), seed=1)
print(f"patches {time.perf_counter() - t:.1f}s")
from benchmarks.reference import measure
print("reference", measure())
PY
epochs() { python3 -c "
import json,sys; r=[json.loads(l) for l in open('$1/metrics.jsonl')]
s=[x['seconds'] for x in r]; print('$2', 'epoch seconds', s, 'steady', round(sum(s[1:])/max(1,len(s)-1),2))"; }
run() { name=$1; shift; t=$SECONDS; timeout ${TMO:-120} "$@" > $W/$name.out 2>&1; rc=$?; echo "## $name rc=$rc wall=$((SECONDS-t))s"; tail -3 $W/$name.out | cut -c1-300; }
D=folder:$W/p64
for g in vae gan diffusion infogan ae; do
  WID=""; [ $g = vae ] && WID="--set width=64"
  run $g-fp32 $F train $g --dataset $D --device $DEV --epochs $EP $WID --out $W/r/$g-fp32 && epochs $W/r/$g-fp32 $g-fp32
  run $g-bf16 $F train $g --dataset $D --device $DEV --epochs $EP $WID --precision bf16 --out $W/r/$g-bf16 && epochs $W/r/$g-bf16 $g-bf16
done
TMO=200 run gan-compile $F train gan --dataset $D --device $DEV --epochs $EP --precision bf16 --compile --out $W/r/gan-compile && epochs $W/r/gan-compile gan-bf16-compile
run tr-gan torchrun --standalone --nproc-per-node 1 -m forensics train gan --dataset $D --device $DEV --epochs 1 --out $W/r/tr-gan && epochs $W/r/tr-gan torchrun-gan
run tr-gan-resume torchrun --standalone --nproc-per-node 1 -m forensics train gan --resume --epochs 2 --out $W/r/tr-gan && epochs $W/r/tr-gan torchrun-gan-resumed
run tr-diff torchrun --standalone --nproc-per-node 1 -m forensics train diffusion --dataset folder:$W/p32 --device $DEV --epochs 1 --out $W/r/tr-diff && epochs $W/r/tr-diff torchrun-diffusion32
run gen-vae $F generate $W/r/vae-fp32 --n ${NP:-4096} --out $W/f/vae --device $DEV
run gen-diff $F generate $W/r/diffusion-fp32 --n $(( ${NP:-4096} / 8 )) --out $W/f/diff --device $DEV
run det-cnn $F train-detector cnn --real $D --fake $W/f/vae --out $W/d/cnn --set device=$DEV --precision bf16
run tr-det torchrun --standalone --nproc-per-node 1 -m forensics train-detector cnn --real $D --fake $W/f/vae --out $W/d/cnn-tr --set device=$DEV --precision bf16
run detect $F detect $W/f/diff --detector $W/d/cnn --device $DEV --json
head -c 600 $W/detect.out; echo
run detect-tr torchrun --standalone --nproc-per-node 1 -m forensics detect $W/f/diff --detector $W/d/cnn --device $DEV --json
tail -c 300 $W/detect-tr.out; echo
for x in $W/*.out; do echo "=== $x"; grep -i -m3 "error\|traceback" $x; done
uptime
