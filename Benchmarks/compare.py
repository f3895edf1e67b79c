"""Side-by-side latency of idlevit, ONNX Runtime and PyTorch on DeiT, and import costs (issue 7).

Run through Benchmarks/compare.sh, which builds idlevit, provides the venv and clears
OPENBLAS_CORETYPE. Subcommands:

    compare.py run --idlevit BIN [--threads 2] [--rounds 7] [--runs 3] ...   the whole comparison
    compare.py export --work DIR --models ...     random-weight timm models -> safetensors, ONNX, HDF5
    compare.py python-bench ...                   the Python contenders, one round per "round" on stdin
    compare.py py-load KIND FILE                  one Python load, timed in-process (for /usr/bin/time)

Method: for every (model, batch) the contenders are run in rounds, alternating: idlevit dense,
idlevit r=0.7, idlevit r=0.5 (a process each), then a round of the Python contenders in one
long-lived process that runs ONNX Runtime, PyTorch dense and IdleViT in PyTorch
(Fixtures/idlevit_reference.py, r=0.7 and 0.5) one after another (each contender's runs back to
back, 0.1 s apart: both runtimes' worker threads spin after a run). Each contender gets `warmup` untimed
and `runs` timed runs per round. A time reported is the median over rounds of the per-round
medians; a ratio is the median over rounds of the ratio within the round, so a slow minute on a
shared machine, which slows both sides of a round, cancels out.
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = {"ti": "deit_tiny_patch16_224", "s": "deit_small_patch16_224", "b": "deit_base_patch16_224"}
SHORT = {v: k for k, v in MODELS.items()}
LABEL = {"ti": "DeiT-Ti", "s": "DeiT-S", "b": "DeiT-B"}


# ---------------------------------------------------------------------------------------------
# export (imports torch; runs in its own process)

def export(args):
    import torch
    import timm
    from safetensors.torch import save_file

    os.makedirs(args.work, exist_ok=True)
    for short in args.models:
        name = MODELS[short]
        st, ox, h5 = (os.path.join(args.work, name + ext) for ext in (".safetensors", ".onnx", ".h5"))
        if all(os.path.exists(p) for p in (st, ox)) and (short != "b" or os.path.exists(h5)):
            continue
        torch.manual_seed(0)
        model = timm.create_model(name, pretrained=False).eval()
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file(state, st)
        with torch.no_grad():
            torch.onnx.export(model, torch.randn(1, 3, 224, 224), ox, opset_version=17, dynamo=False,
                              input_names=["pixel_values"], output_names=["logits"],
                              dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}})
        if short == "b":
            import h5py
            with h5py.File(h5, "w") as f:
                for k, v in state.items():
                    f.create_dataset(k, data=v.numpy())
        print(f"exported {name}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# one round of the Python contenders

def time_in_turn(contenders, warmup, runs):
    """{label: [ms of each timed run]} for (label, fn) contenders, one after another: each one's
    warm-up and timed runs back to back, then a pause before the next. ONNX Runtime's and
    PyTorch's worker threads spin for a while after a run, so interleaving run by run timed each
    contender against the previous one's spinning threads on 2 cores (ORT DeiT-S at batch 1:
    129 ms interleaved with other sessions, 64 ms alone)."""
    times = {}
    for label, fn in contenders:
        time.sleep(0.1)
        times[label] = []
        for i in range(warmup + runs):
            start = time.perf_counter()
            fn()
            elapsed = (time.perf_counter() - start) * 1e3
            if i >= warmup:
                times[label].append(elapsed)
    return times


def python_bench(args):
    import torch
    import timm
    import onnxruntime as ort
    from safetensors.torch import load_file

    sys.path.insert(0, os.path.join(HERE, "..", "Fixtures"))
    import idlevit_reference as ref

    torch.set_num_threads(args.threads)
    name = MODELS[args.model]
    model = timm.create_model(name, pretrained=False).eval()
    model.load_state_dict(load_file(os.path.join(args.work, name + ".safetensors")))
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(os.path.join(args.work, name + ".onnx"), options, providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch, 3, 224, 224, generator=g)
    xn = x.numpy()
    depth, patches = len(model.blocks), model.patch_embed.num_patches
    schedules = {r: ref.schedule(depth, patches, r) for r in args.ratios}

    contenders = [("onnxruntime", lambda: session.run(None, {"pixel_values": xn}))]
    if not args.only_ort:
        contenders.append(("pytorch", lambda: model(x)))
        for r in args.ratios:
            contenders.append((f"pytorch_idle_{r}", lambda r=r: ref.idle_forward(model, x, schedules[r], with_cut_loss=False)))
    # One round per line on stdin ("round"), one JSON line of medians back: the process (torch
    # import, model, ORT session) lives across rounds, so rounds are cheap and can be many.
    # "ready" first, so that nobody is timed while this process is still loading.
    print("ready", flush=True)
    with torch.inference_mode():
        for line in sys.stdin:
            if line.strip() != "round":
                break
            times = time_in_turn(contenders, args.warmup, args.runs)
            print(json.dumps({label: statistics.median(t) for label, t in times.items()}), flush=True)


# ---------------------------------------------------------------------------------------------
# Python loads, for the import table

def py_load(args):
    """One load (or load + save) in a fresh process; prints the seconds spent after the imports."""
    if args.kind == "safetensors":
        from safetensors.numpy import load_file
        start = time.perf_counter()
        tensors = load_file(args.file)
        total = sum(v.nbytes for v in tensors.values())
    elif args.kind in ("roundtrip", "roundtrip-fsync"):
        # The contender issue 6 names: safetensors.torch, as a PyTorch user converts. save_file
        # leaves the data in the page cache; "-fsync" also waits for it to reach the disk, as
        # idlevit's atomic writer does before its rename.
        from safetensors.torch import load_file, save_file
        start = time.perf_counter()
        tensors = load_file(args.file)
        save_file(tensors, args.out)
        if args.kind == "roundtrip-fsync":
            fd = os.open(args.out, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        total = sum(v.numel() * v.element_size() for v in tensors.values())
    elif args.kind == "onnx":
        import onnx
        start = time.perf_counter()
        model = onnx.load(args.file)
        total = sum(len(t.raw_data) for t in model.graph.initializer)
    elif args.kind == "h5":
        import h5py
        start = time.perf_counter()
        total = 0
        with h5py.File(args.file, "r") as f:
            def visit(_, obj):
                nonlocal total
                if isinstance(obj, h5py.Dataset):
                    total += obj[()].nbytes
            f.visititems(visit)
    else:
        raise SystemExit(f"unknown kind {args.kind}")
    print(json.dumps({"seconds": time.perf_counter() - start, "bytes": total}))


# ---------------------------------------------------------------------------------------------
# the comparison

def sh(cmd, env=None):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"failed ({out.returncode}): {' '.join(cmd)}\n{out.stderr}")
    return out.stdout


def timed(cmd, env=None):
    """Wall seconds and peak RSS (MB) of a command, from GNU time."""
    out = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        lines = [l for l in out.stderr.splitlines() if l.strip() and not l.startswith("\t") and "Command exited" not in l]
        return None, None, lines[0] if lines else f"exit status {out.returncode}"
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1)) / 1024
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", out.stderr).group(1)
    seconds = 0.0
    for part in wall.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds, rss, out.stdout


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run(args):
    env = dict(os.environ)
    coretype = env.pop("OPENBLAS_CORETYPE", None) if not args.keep_coretype else env.get("OPENBLAS_CORETYPE")
    py = sys.executable
    me = os.path.abspath(__file__)
    sh([py, me, "export", "--work", args.work, "--models", *args.models], env=env)

    results = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cpu": cpu_name(),
               "cores": os.cpu_count(), "threads": args.threads, "rounds": args.rounds, "runs_per_round": args.runs,
               "warmup": args.warmup,
               "openblas_coretype": (env.get("OPENBLAS_CORETYPE") if args.keep_coretype else
                                     f"unset for every contender (the launching environment had {coretype or 'none'})"),
               "method": ("times: median over rounds of per-round medians; ratios: median over rounds of the ratio "
                          "within the round; contenders alternate within each round"),
               "latency": [], "import": []}
    for short in ([] if args.skip_latency else args.models):
        name = MODELS[short]
        st = os.path.join(args.work, name + ".safetensors")
        gmacs = {}
        for r in args.ratios:
            doc = json.loads(sh([args.idlevit, "stats", st, "--keep-ratio", str(r), "--json"], env=env))
            gmacs[r] = (doc["dense_gmacs"], doc["gmacs"])
        for batch in args.batches:
            rounds = {}
            worker = subprocess.Popen([py, me, "python-bench", "--work", args.work, "--model", short, "--batch", str(batch),
                                       "--threads", str(args.threads), "--runs", str(args.runs), "--warmup", str(args.warmup),
                                       "--ratios", *map(str, args.ratios)] + (["--only-ort"] if args.only_ort else []),
                                      env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            if worker.stdout.readline().strip() != "ready":
                raise SystemExit(f"the Python contenders did not start ({name}, batch {batch})")
            for rnd in range(args.rounds):
                for r in [None] + args.ratios:
                    cmd = [args.idlevit, "bench", st, "--batch", str(batch), "--threads", str(args.threads),
                           "--runs", str(args.runs), "--warmup", str(args.warmup), "--json"]
                    if r is not None:
                        cmd += ["--keep-ratio", str(r)]
                    doc = json.loads(sh(cmd, env=env))
                    rounds.setdefault("idlevit" if r is None else f"idlevit_idle_{r}", []).append(doc["median_ms"])
                worker.stdin.write("round\n")
                worker.stdin.flush()
                line = worker.stdout.readline()
                if not line:
                    raise SystemExit(f"the Python contenders stopped ({name}, batch {batch})")
                for label, ms in json.loads(line).items():
                    rounds.setdefault(label, []).append(ms)
                print(f"  {LABEL[short]} batch {batch} round {rnd + 1}/{args.rounds}: " +
                      ", ".join(f"{k} {v[-1]:.1f}" for k, v in rounds.items()), file=sys.stderr, flush=True)
            worker.stdin.close()
            worker.wait()
            med = {k: statistics.median(v) for k, v in rounds.items()}
            # Ratios of figures from the same round, then their median: a slow minute on a shared
            # machine scales both sides of a round, so it cancels in the ratio.
            def ratio(a, b):
                if a not in rounds or b not in rounds:
                    return None  # a contender left out (--only-ort)
                return statistics.median(x / y for x, y in zip(rounds[a], rounds[b]))
            entry = {"model": name, "batch": batch, "median_ms": med, "rounds_ms": rounds,
                     "ours_over_onnxruntime": ratio("idlevit", "onnxruntime"),
                     "ours_over_pytorch": ratio("idlevit", "pytorch"), "idle": {}}
            for r in args.ratios:
                dense_g, idle_g = gmacs[r]
                speedup = ratio("idlevit", f"idlevit_idle_{r}")
                entry["idle"][str(r)] = {"speedup": speedup, "gmacs_ratio": dense_g / idle_g,
                                         "fraction_of_gmacs_ratio": speedup / (dense_g / idle_g),
                                         "idle_over_onnxruntime_dense": ratio(f"idlevit_idle_{r}", "onnxruntime"),
                                         "pytorch_speedup": ratio("pytorch", f"pytorch_idle_{r}"),
                                         "ours_over_pytorch_idle": ratio(f"idlevit_idle_{r}", f"pytorch_idle_{r}")}
            results["latency"].append(entry)

    if "b" in args.models and not args.skip_import:
        base = os.path.join(args.work, MODELS["b"])
        rows = [("open safetensors", "idlevit inspect", [args.idlevit, "inspect", base + ".safetensors"]),
                ("open safetensors", "python safetensors.numpy.load_file", [py, me, "py-load", "safetensors", base + ".safetensors"]),
                ("import ONNX", "idlevit inspect", [args.idlevit, "inspect", base + ".onnx"]),
                ("import ONNX", "python onnx.load", [py, me, "py-load", "onnx", base + ".onnx"]),
                ("import HDF5", "idlevit inspect", [args.idlevit, "inspect", base + ".h5"]),
                ("import HDF5", "python h5py (read every dataset)", [py, me, "py-load", "h5", base + ".h5"]),
                ("convert", "idlevit convert (bundle, r = 0.7)", [args.idlevit, "convert", base + ".safetensors", "--keep-ratio", "0.7",
                                                                  "-o", os.path.join(args.work, "convert-out.idlevit.safetensors")]),
                ("convert", "idlevit convert --to safetensors", [args.idlevit, "convert", base + ".safetensors", "--to",
                                                                 "safetensors", "-o", os.path.join(args.work, "convert-out.safetensors")]),
                ("convert", "python safetensors.torch load_file + save_file", [py, me, "py-load", "roundtrip", base + ".safetensors",
                                                                               "--out", os.path.join(args.work, "python-out.safetensors")]),
                ("convert", "python load_file + save_file + fsync", [py, me, "py-load", "roundtrip-fsync", base + ".safetensors",
                                                                     "--out", os.path.join(args.work, "python-out.safetensors")])]
        size_mb = os.path.getsize(base + ".safetensors") / 2**20
        results["model_size_mb"] = size_mb
        # Rows alternate within each round, as the latency contenders do, so a slow spell of a
        # shared host lands on every tool rather than on one. Outputs are removed before each run:
        # every writer creates its file anew.
        samples = {(what, tool): [] for what, tool, _ in rows}
        errors = {}
        for _ in range(args.import_rounds):
            for what, tool, cmd in rows:
                if (what, tool) in errors:
                    continue
                if "-o" in cmd or "--out" in cmd:
                    out_path = cmd[cmd.index("-o" if "-o" in cmd else "--out") + 1]
                    if os.path.exists(out_path):
                        os.remove(out_path)
                seconds, rss, out = timed(cmd, env=env)
                if seconds is None:
                    errors[(what, tool)] = out
                    continue
                inner = json.loads(out)["seconds"] if "py-load" in cmd else None
                samples[(what, tool)].append((seconds, rss, inner))
        for what, tool, _ in rows:
            if (what, tool) in errors:
                results["import"].append({"what": what, "tool": tool, "error": errors[(what, tool)]})
                continue
            runs = samples[(what, tool)]
            inner = statistics.median(s[2] for s in runs) if runs[0][2] is not None else None
            results["import"].append({"what": what, "tool": tool, "process_seconds": statistics.median(s[0] for s in runs),
                                      "in_process_seconds": inner, "peak_rss_mb": max(s[1] for s in runs),
                                      "process_seconds_all": [s[0] for s in runs]})
    report(results)
    os.makedirs(args.results, exist_ok=True)
    # A partial run gets its own file rather than replacing the day's full record.
    part = "-import" if args.skip_latency else "-latency" if args.skip_import else ""
    path = os.path.join(args.results, datetime.date.today().isoformat() + part + ".json")
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
    print(f"\nwrote {os.path.relpath(path)}")


def report(res):
    print(f"\n{res['cpu']}, {res['cores']} cores; T = {res['threads']} threads; OPENBLAS_CORETYPE {res['openblas_coretype']}")
    print(f"{res['rounds']} rounds x {res['runs_per_round']} runs (+{res['warmup']} warm-up), {res['method']}\n")
    ratios = sorted({r for e in res["latency"] for r in e["idle"]}, reverse=True)
    head = ["model", "batch", "idlevit", "ORT", "PyTorch", "ours/ORT", "ours/PyT"]
    for r in ratios:
        head += [f"idlevit r={r}", "speedup", "GMACs x", "frac", "idle/ORT dense"]
    for r in ratios:
        head += [f"PyT idle r={r}"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))

    def ms(m, key):
        return f"{m[key]:.1f} ms" if key in m else "-"

    def x(value, suffix=""):
        return f"{value:.2f}{suffix}" if value is not None else "-"

    for e in res["latency"]:
        m = e["median_ms"]
        row = [LABEL[SHORT[e["model"]]], str(e["batch"]), ms(m, "idlevit"), ms(m, "onnxruntime"), ms(m, "pytorch"),
               x(e["ours_over_onnxruntime"]), x(e["ours_over_pytorch"])]
        for r in ratios:
            i = e["idle"][r]
            row += [ms(m, "idlevit_idle_" + r), x(i["speedup"], "x"), x(i["gmacs_ratio"], "x"), x(i["fraction_of_gmacs_ratio"]),
                    x(i.get("idle_over_onnxruntime_dense"))]
        for r in ratios:
            row += [ms(m, "pytorch_idle_" + r)]
        print("| " + " | ".join(row) + " |")
    if res["import"]:
        print(f"\nDeiT-B ({res['model_size_mb']:.0f} MB of float32 weights): wall time of the whole process "
              "(Python: also the time inside the process, without interpreter start-up and imports) and peak RSS\n")
        print("| task | tool | process | in-process | peak RSS |")
        print("|---|---|---|---|---|")
        for i in res["import"]:
            if "error" in i:
                print(f"| {i['what']} | {i['tool']} | not available: {i['error']} | | |")
                continue
            inner = f"{i['in_process_seconds']:.3f} s" if i["in_process_seconds"] is not None else ""
            print(f"| {i['what']} | {i['tool']} | {i['process_seconds']:.3f} s | {inner} | {i['peak_rss_mb']:.0f} MB |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("--work", required=True)
    e.add_argument("--models", nargs="+", default=list(MODELS))
    b = sub.add_parser("python-bench")
    b.add_argument("--work", required=True)
    b.add_argument("--model", required=True, choices=list(MODELS))
    b.add_argument("--batch", type=int, default=1)
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--runs", type=int, default=5)
    b.add_argument("--warmup", type=int, default=2)
    b.add_argument("--ratios", nargs="+", type=float, default=[0.7, 0.5])
    b.add_argument("--only-ort", action="store_true")
    lo = sub.add_parser("py-load")
    lo.add_argument("kind")
    lo.add_argument("file")
    lo.add_argument("--out")
    r = sub.add_parser("run")
    r.add_argument("--idlevit", required=True)
    r.add_argument("--work", default=os.path.join(HERE, "work", "compare"))
    r.add_argument("--results", default=os.path.join(HERE, "results"))
    r.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    r.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--rounds", type=int, default=7)
    r.add_argument("--runs", type=int, default=3)
    r.add_argument("--warmup", type=int, default=1)
    r.add_argument("--ratios", nargs="+", type=float, default=[0.7, 0.5])
    r.add_argument("--import-rounds", type=int, default=3)
    r.add_argument("--skip-import", action="store_true")
    r.add_argument("--skip-latency", action="store_true", help="only the DeiT-B import and convert table")
    r.add_argument("--only-ort", action="store_true",
                   help="ONNX Runtime as the only Python contender (no PyTorch, dense or idle): much shorter rounds")
    r.add_argument("--keep-coretype", action="store_true",
                   help="leave OPENBLAS_CORETYPE as the environment sets it (default: unset, as on a user's machine)")
    args = p.parse_args()
    {"export": export, "python-bench": python_bench, "py-load": py_load, "run": run}[args.cmd](args)


if __name__ == "__main__":
    main()
