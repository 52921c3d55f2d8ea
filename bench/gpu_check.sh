#!/usr/bin/env bash
# GPU check: one prepared script for a bare x86-64 GPU machine, <= 8 minutes.
#
# Prints, clearly labelled (lines starting with RESULT), then one final JSON line:
#   1. time to >= 99.0% test accuracy (`fast` and `fast-gpu` presets, 3 seeds) and to >= 99.5% (`fast-99.5`), with the
#      PyTorch-examples-style baseline measured in the same run (bench/time_to_accuracy.py);
#   2. the `best` preset's single-model accuracy and time, and a 5-seed ensemble (bench/best_accuracy.py);
#   3. the shipped pretrained model's test accuracy, evaluated from the package's files;
#   4. time to 99.0% again, replaying each step as a CUDA graph (`fast-gpu+compile:reduce-overhead`), then
#      where a step's time goes (bench/step_profile.py: kernels per step, the GPU's busy fraction), eager
#      and graphed. Last: they compile first, and they get what steps 1-3 leave;
#   training images/s for each, and whether the 0.5 s goal is met (and by which variant).
# Writes gpu_check.log, results.json, ensemble.json, profile.jsonl and best_runs.tgz.part00, 01, ... (the 5 models,
# in parts of 15 MB) to $OUT.
#
# Knobs (environment), for a session that already has some of these figures and wants its minutes elsewhere:
#   GPU_CHECK_SECONDS  the script's own budget (default 470 of the 8 minutes);
#   TTA_PRESETS        step 1's presets (default fast,fast-gpu,fast-99.5);
#   ENSEMBLE_PRESET    step 2's preset (default best);
#   ENSEMBLE_FIT=1     step 2 sizes the preset's epochs to the time it has (best_accuracy.py --fit-epochs) and
#                      skips the Keras-convnet baseline: for a preset whose full schedule may not fit;
#   SKIP_STEPS         steps to leave out, e.g. "3 4b".
# Step 4 (CUDA graphs) runs straight after step 1, and only when eager training missed 0.5 s: it is the
# cheaper goal, and step 2 then gets all that is left.
# Needs (carry them): .whl/ (pooch, platformdirs wheels) and .carry/mnist/ (the four MNIST .gz files).
# Run from the repository root:   bash bench/gpu_check.sh
# Smoke test on a CPU:            GPU_CHECK_QUICK=1 PYTHON=.venv/bin/python OUT=/tmp/fake-out bash bench/gpu_check.sh
set -u -o pipefail  # a step that fails says so, even through tee

START=$(date +%s)
OUT=${OUT:-/tmp/gpu_check_out}
PY=${PYTHON:-python3}
QUICK=${GPU_CHECK_QUICK:-0}
DATA=${DATA_DIR:-.carry/mnist}
WORK=$(mktemp -d /tmp/gpu_check.XXXXXX)
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
exec > >(tee -a "$LOG") 2>&1

say() { echo "[gpu_check +$(( $(date +%s) - START ))s] $*"; }
TOTAL=${GPU_CHECK_SECONDS:-470}  # of the 8 minutes, minus a margin
left() { local l=$(( TOTAL - ($(date +%s) - START) )); echo $(( l < 10 ? 10 : l )); }
TTA_PRESETS=${TTA_PRESETS:-fast,fast-gpu,fast-99.5}
ENSEMBLE_PRESET=${ENSEMBLE_PRESET:-best}
SKIP=" ${SKIP_STEPS:-} "
skipping() { case "$SKIP" in *" $1 "*) say "step $1: skipped (SKIP_STEPS)"; return 0;; esac; return 1; }

say "start: OUT=$OUT WORK=$WORK QUICK=$QUICK python=$PY"
if [ "$QUICK" = "1" ]; then TTA_FLAGS="--quick"; BEST_FLAGS="--quick"
  DEVICE=${DEVICE:-auto}
else TTA_FLAGS=""; BEST_FLAGS=""; DEVICE=${DEVICE:-cuda}; fi

# 0. Dependencies the bare machine lacks (pure-python wheels), the checkout on the path, and the facts.
if ls .whl/*.whl >/dev/null 2>&1; then
  timeout 60 "$PY" -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl || say "WARN: wheel install failed"
fi
export PYTHONPATH="$PWD/src:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}  # idle OpenMP threads sleep: concurrent runs share the CPUs
timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || say "WARN: no nvidia-smi"
timeout 60 "$PY" -c "import torch, digitlab, pooch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-'); print('digitlab', digitlab.__version__)" \
  || say "WARN: imports failed"
[ -f "$DATA/train-images-idx3-ubyte.gz" ] || say "WARN: $DATA has no MNIST files (carry .carry/mnist)"

# 1. Time to 99.0% (fast, and fast-gpu: a quarter of the steps) and 99.5% (fast-99.5), 3 seeds each, baseline
#    in the same run.
if ! skipping 1; then
  say "step 1: time to accuracy ($TTA_PRESETS)"
  timeout -k 5 $(( $(left) < 150 ? $(left) : 150 )) "$PY" bench/time_to_accuracy.py --device "$DEVICE" --data-dir "$DATA" \
    --presets "$TTA_PRESETS" --baseline-budget 60 $TTA_FLAGS \
    | tee "$WORK/tta.log" || say "WARN: step 1 failed or timed out"
fi

# 4. Time to 99.0% replaying each step as a CUDA graph (torch.compile's reduce-overhead mode; it compiles in
#    its untimed warm-up), for `fast-gpu` (`fast` this way: 1.31 s on an H200). Plain `+compile` is not run
#    here: on an H200 it took 2.19 s against 1.56 s eager for `fast`. Only when no eager
#    preset of step 1 met the goal: then it is the next thing to try, and it costs about 45 s.
EAGER_MET=$("$PY" - "$WORK/tta.log" <<'PYEOF' 2>/dev/null
import json, sys
lines = [l for l in open(sys.argv[1]) if l.startswith("{")]
presets = json.loads(lines[-1]).get("presets", {}) if lines else {}
print(any(p.get("time_s") and p["hits"] == len(p["runs"]) and p["time_s"]["mean"] <= 0.5 for p in presets.values()))
PYEOF
)
if skipping 4; then :
elif [ "$EAGER_MET" = "True" ]; then say "step 4: not needed (an eager preset met 0.5 s)"
else
  say "step 4: time to 99.0% with CUDA graphs ($(left)s left)"
  timeout -k 5 $(( $(left) > 120 ? 90 : $(left) / 2 )) "$PY" bench/time_to_accuracy.py --device "$DEVICE" \
    --data-dir "$DATA" --presets fast-gpu+compile:reduce-overhead --skip-baseline $TTA_FLAGS | tee "$WORK/tta_graphs.log" \
    || say "WARN: step 4 failed or timed out"
fi

# 2. The ensemble preset (best): all 5 seeds at once beside the baseline, then the 5-seed ensemble. One run
#    leaves the GPU mostly idle: on an H200 4 runs at once took 133-137 s each, one alone 143 s,
#    so seed 0 alone and then seeds 1-4 would not fit the budget.
if ! skipping 2; then
  # Time kept back for step 3, and for step 4b's profiles when the 0.5 s goal is still open (else they only
  # get what is left).
  RESERVE=$(( $(skipping 3 >/dev/null && echo 0 || echo 30) \
              + $( (skipping 4b >/dev/null || [ "$EAGER_MET" = "True" ]) && echo 0 || echo 60) ))
  BUDGET=$(( $(left) - RESERVE - 10 )); BUDGET=$(( BUDGET < 60 ? 60 : BUDGET ))
  FIT_FLAGS=""
  # Sizing the epochs (about 30 s) and the ensemble's evaluation (about 15 s) come out of the budget too.
  if [ "${ENSEMBLE_FIT:-0}" = "1" ]; then FIT_FLAGS="--skip-baseline --fit-epochs $(( BUDGET - 60 ))"; fi
  say "step 2: $ENSEMBLE_PRESET preset and ensemble ($(left)s left, budget ${BUDGET}s)"
  timeout -k 5 $(( BUDGET + 20 )) "$PY" bench/best_accuracy.py -o "$WORK/best" --data-dir "$DATA" --device "$DEVICE" \
    --preset "$ENSEMBLE_PRESET" --parallel 5 --together --time-budget "$BUDGET" $FIT_FLAGS $BEST_FLAGS \
    | tee "$WORK/best.log" || say "WARN: step 2 failed or timed out"
  cp "$WORK/best/ensemble.json" "$OUT/ensemble.json" 2>/dev/null || say "WARN: no ensemble.json"
  # The trained models come back as one archive ($OUT returns at most 8 files of 16 MiB), in 15 MB parts (five
  # `deep` models are 23 MB): `cat best_runs.tgz.part* | tar xz` joins them on another machine.
  tar czf - -C "$WORK" --exclude quick-data best 2>/dev/null | split -b 15m -d - "$OUT/best_runs.tgz.part" \
    || say "WARN: no best_runs.tgz"
fi

# 3. The shipped pretrained model, loaded from the package's files and tested as a user would.
if ! skipping 3; then
  say "step 3: the shipped pretrained model ($(left)s left)"
  timeout -k 5 60 "$PY" -m digitlab evaluate --pretrained --data-dir "$DATA" --json \
    | tee "$WORK/pretrained.log" || say "WARN: step 3 failed"
fi

# 4b. Where a step's time goes (bench/step_profile.py): eager and with CUDA graphs, if time is left.
#     Host-bound (the GPU waits on Python) or kernel-bound decides the next change for the 0.5 s goal.
for spec in fast-gpu fast-gpu+compile:reduce-overhead fast; do
  if skipping 4b >/dev/null; then :
  elif [ "$(left)" -gt 25 ]; then
    say "step 4b: step profile of $spec ($(left)s left)"
    timeout -k 5 $(( $(left) - 5 )) "$PY" bench/step_profile.py --device "$DEVICE" --data-dir "$DATA" --preset "$spec" \
      $([ "$QUICK" = "1" ] && echo "--steps 8") | tee -a "$WORK/profile.log" | grep -v '^{' || say "WARN: profile of $spec failed or timed out"
  else say "step 4b: no time left for the profile of $spec"; fi
done
grep '^{' "$WORK/profile.log" > "$OUT/profile.jsonl" 2>/dev/null

# 5. Labelled results and one JSON line (parsed from each step's last JSON line).
say "step 5: summary"
"$PY" - "$WORK" "$OUT" "$START" <<'PYEOF'
import json, os, sys, time
work, out, start = sys.argv[1], sys.argv[2], float(sys.argv[3])

def last_json(name):
    try:
        lines = [l for l in open(os.path.join(work, name)) if l.startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None

tta, best, pre = last_json("tta.log"), last_json("best.log"), last_json("pretrained.log")
res = {"quick": os.environ.get("GPU_CHECK_QUICK") == "1"}
presets = {}
for log in ("tta.log", "tta_graphs.log"):
    presets.update((last_json(log) or {}).get("presets") or {})
for name, label in (("fast", "time_to_99.0"), ("fast-gpu", "time_to_99.0_fast_gpu"),
                    ("fast-gpu+compile:reduce-overhead", "time_to_99.0_fast_gpu_cuda_graphs"),
                    ("fast-99.5", "time_to_99.5")):
    p = presets.get(name)
    if p and p.get("time_s"):
        t, runs = p["time_s"], p["runs"]
        ips = [60000 * r["epochs"] / r["train_time_s"] for r in runs if r["train_time_s"]]
        res[label] = {"preset": name, "mean_s": t["mean"], "min_s": t["min"], "max_s": t["max"], "hits": p["hits"],
                      "runs": len(runs), "accuracies": [r["test_accuracy"] for r in runs],
                      "images_per_s": sum(ips) / len(ips)}
        print(f"RESULT {label} ({name}): {t['mean']:.3f}s mean (min {t['min']:.3f}, max {t['max']:.3f}), "
              f"{p['hits']}/{len(runs)} runs hit, accuracies {res[label]['accuracies']}, "
              f"{res[label]['images_per_s']:,.0f} training images/s")
    else:
        res[label] = {"preset": name, "error": (p or {}).get("error", "missing")}
        print(f"RESULT {label} ({name}): MISSING ({res[label]['error'][:200]})")
# The goal: 99.0% in <= 0.5 s of training; a variant meets it when every seed hits 99.0% and the mean is in time.
met = [(res[k]["mean_s"], res[k]["preset"]) for k in ("time_to_99.0", "time_to_99.0_fast_gpu", "time_to_99.0_fast_gpu_cuda_graphs")
       if "mean_s" in res[k] and res[k]["hits"] == res[k]["runs"] and res[k]["mean_s"] <= 0.5]
res["goal_99.0_in_0.5s"] = {"met": bool(met), "by": min(met)[1] if met else None, "mean_s": min(met)[0] if met else None}
print("RESULT goal 99.0% in <= 0.5 s: " + (f"MET by {min(met)[1]} ({min(met)[0]:.3f}s mean, all seeds hit)" if met
                                            else "NOT MET (see the times above)"))
if tta and tta.get("baseline"):
    res["baseline_tta"] = tta["baseline"]
    res["speedup_vs_baseline"] = tta.get("speedup_vs_baseline")
    print(f"RESULT baseline (examples-style loop): {tta['baseline']}; speedup {tta.get('speedup_vs_baseline')}")
if best:
    preset = best.get("preset", "best")
    single = {**(best.get("single") or {}), "preset": preset}
    res["best_single"] = single
    res["epoch_sizing"] = best.get("epoch_sizing")
    if single.get("test_accuracy") is not None:
        try:
            epochs = json.load(open(os.path.join(work, "best", "seed-0", "metrics.json")))["epochs_run"]
        except (OSError, ValueError, KeyError):
            epochs = 40
        single["images_per_s"] = 60000 * epochs / single["train_time_s"]
        single["epochs"] = epochs
        print(f"RESULT best_single ({preset}, {epochs} epochs): test accuracy {single['test_accuracy']:.4f} in {single['train_time_s']:.1f}s "
              f"({single['images_per_s']:,.0f} training images/s{'' if single.get('solo', True) else ', beside the other seeds'})")
    ens = best.get("ensemble")
    res["ensemble"] = ens
    print(f"RESULT ensemble ({preset}): " + (f"{ens['n_members']} members, test accuracy {ens['ensemble_accuracy']:.4f}, "
                                 f"members {ens['member_accuracies']}" if ens else "MISSING"))
    res["baseline_cnn"] = best.get("baseline")
else:
    print("RESULT best_single: MISSING")
res["pretrained"] = pre and {k: pre.get(k) for k in ("accuracy", "errors", "model", "recorded_test_accuracy")}
if pre:
    import digitlab
    weights = os.path.join(os.path.dirname(digitlab.__file__), "pretrained", "model.safetensors")
    size = os.path.getsize(weights)
    ok = pre["accuracy"] >= 0.996 and size < 5_000_000
    res["pretrained"].update(size_bytes=size, meets_99_6=ok)
    print(f"RESULT pretrained: test accuracy {pre['accuracy']:.4f} (recorded "
          f"{pre.get('recorded_test_accuracy')}), {weights} ({size / 1e6:.2f} MB) -> {'PASS' if ok else 'FAIL'} "
          "(needs >= 0.9960, < 5 MB)")
else:
    print("RESULT pretrained: MISSING")
res["elapsed_s"] = round(time.time() - start, 1)
from digitlab.files import write_json
write_json(os.path.join(out, "results.json"), res)
print(json.dumps(res))
PYEOF
say "done"
