"""Does IdleViT pay on ONNX Runtime? ORT running idlevit's ONNX exports (IdleViT r = 0.7 / 0.5 and
dense) against ORT running the PyTorch export of the same dense model, with idlevit's own engine
in the same rounds (issue 14).

    Benchmarks/ort_idle.sh [--models s b] [--batches 1 8] [--rounds 7] ...   (builds idlevit, picks the venv)
    python Benchmarks/ort_idle.py --idlevit BIN [--work Benchmarks/work/compare] ...

Models: timm DeiT-S / DeiT-B with random weights (pretrained=False, seed 0), written by
`compare.py export` (safetensors + the TorchScript exporter's ONNX, opset 17, dynamic batch)
under Benchmarks/work/compare (gitignored); idlevit converts the safetensors to ONNX (dense and
each keep ratio, opset 17). Method as compare.py's: for each (model, batch) the contenders run
in rounds, alternating: `idlevit bench` dense and per ratio (a process each), then the ORT
sessions (all loaded in this process; intra_op_num_threads = T, inter_op_num_threads = 1,
sequential, default graph optimisations) one after another (each its warm-up and timed runs back to back, 0.1 s apart: ORT workers spin after a run). Each contender gets `warmup`
untimed and `runs` timed runs per round. A time is the median over rounds of the per-round
medians; a ratio the median over rounds of the ratio within the round. Results go to
Benchmarks/results/DATE-ort-idle.json.
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from compare import LABEL, MODELS, cpu_name, time_in_turn  # noqa: E402


def sh(cmd, env):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout


def session(path, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idlevit", required=True)
    parser.add_argument("--work", default=os.path.join(HERE, "work", "compare"))
    parser.add_argument("--models", nargs="+", default=["s", "b"], choices=list(MODELS))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--ratios", nargs="+", type=float, default=[0.7, 0.5])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--skip-idlevit", action="store_true", help="ORT contenders only")
    args = parser.parse_args()

    env = dict(os.environ)
    coretype = env.pop("OPENBLAS_CORETYPE", None)  # as compare.py: a user's machine does not set it
    subprocess.run([sys.executable, os.path.join(HERE, "compare.py"), "export", "--work", args.work, "--models", *args.models],
                   check=True, env=env)
    results = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cpu": cpu_name(), "cores": os.cpu_count(),
               "threads": args.threads, "rounds": args.rounds, "runs_per_round": args.runs, "warmup": args.warmup,
               "onnxruntime": ort.__version__,
               "openblas_coretype": f"unset for idlevit (the launching environment had {coretype or 'none'})",
               "method": "times: median over rounds of per-round medians; ratios: median over rounds of the ratio within "
                         "the round; contenders alternate within each round", "latency": []}
    for short in args.models:
        name = MODELS[short]
        st = os.path.join(args.work, name + ".safetensors")
        files = {"ort_torch_dense": os.path.join(args.work, name + ".onnx")}
        for r in [None] + args.ratios:
            label = "ort_dense" if r is None else f"ort_idle_{r}"
            files[label] = os.path.join(args.work, f"{name}-idlevit-{'dense' if r is None else r}.onnx")
            sh([args.idlevit, "convert", st, "--to", "onnx", "-o", files[label]] + ([] if r is None else ["--keep-ratio", str(r)]), env)
        sessions = {label: session(path, args.threads) for label, path in files.items()}
        for batch in args.batches:
            x = np.random.default_rng(1).standard_normal((batch, 3, 224, 224), dtype=np.float32)
            rounds = {}
            for rnd in range(args.rounds):
                for r in ([] if args.skip_idlevit else [None] + args.ratios):
                    cmd = [args.idlevit, "bench", st, "--batch", str(batch), "--threads", str(args.threads),
                           "--runs", str(args.runs), "--warmup", str(args.warmup), "--json"]
                    if r is not None:
                        cmd += ["--keep-ratio", str(r)]
                    rounds.setdefault("idlevit" if r is None else f"idlevit_idle_{r}", []).append(json.loads(sh(cmd, env))["median_ms"])
                times = time_in_turn([(label, lambda s=s: s.run(None, {"pixel_values": x})) for label, s in sessions.items()],
                                     args.warmup, args.runs)
                for label, t in times.items():
                    rounds.setdefault(label, []).append(statistics.median(t))
                print(f"  {LABEL[short]} batch {batch} round {rnd + 1}/{args.rounds}: " +
                      ", ".join(f"{k} {v[-1]:.1f}" for k, v in rounds.items()), file=sys.stderr, flush=True)

            def ratio(a, b):
                return statistics.median(p / q for p, q in zip(rounds[a], rounds[b]))
            entry = {"model": name, "batch": batch, "median_ms": {k: statistics.median(v) for k, v in rounds.items()},
                     "rounds_ms": rounds, "ort_dense_over_ort_torch_dense": ratio("ort_dense", "ort_torch_dense"), "idle": {}}
            for r in args.ratios:
                idle = {"ort_speedup_over_ort_torch_dense": ratio("ort_torch_dense", f"ort_idle_{r}"),
                        "ort_speedup_over_ort_dense": ratio("ort_dense", f"ort_idle_{r}")}
                if not args.skip_idlevit:
                    idle["idlevit_idle_over_ort_idle"] = ratio(f"idlevit_idle_{r}", f"ort_idle_{r}")
                    idle["idlevit_speedup"] = ratio("idlevit", f"idlevit_idle_{r}")
                entry["idle"][str(r)] = idle
            results["latency"].append(entry)
        del sessions

    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    out = os.path.join(HERE, "results", datetime.date.today().isoformat() + "-ort-idle.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"\nCPU: {results['cpu']}, {results['cores']} cores, T = {args.threads}, {args.rounds} rounds; wrote {out}\n")
    ratios = args.ratios
    head = ["model", "batch", "ORT dense (torch export)", "ORT dense (idlevit export)"]
    for r in ratios:
        head += [f"ORT r={r}", f"speedup r={r}"]
    if not args.skip_idlevit:
        head += ["idlevit dense"] + [f"idlevit r={r}" for r in ratios]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for e in results["latency"]:
        m = e["median_ms"]
        row = [LABEL[next(k for k, v in MODELS.items() if v == e["model"])], str(e["batch"]),
               f"{m['ort_torch_dense']:.1f} ms", f"{m['ort_dense']:.1f} ms ({e['ort_dense_over_ort_torch_dense']:.2f})"]
        for r in ratios:
            row += [f"{m[f'ort_idle_{r}']:.1f} ms", f"{e['idle'][str(r)]['ort_speedup_over_ort_torch_dense']:.2f}x"]
        if not args.skip_idlevit:
            row += [f"{m['idlevit']:.1f} ms"] + [f"{m[f'idlevit_idle_{r}']:.1f} ms" for r in ratios]
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
