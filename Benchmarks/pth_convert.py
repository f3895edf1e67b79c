#!/usr/bin/env python3
"""DeiT-B PyTorch checkpoint -> IdleViT bundle: idlevit against a Python process doing what a
PyTorch user does to get out of pickle, `torch.load(weights_only=True)` + `safetensors.torch.save_file`.

    /work/venv/bin/python Benchmarks/pth_convert.py --idlevit .build/release/idlevit [--rounds 7]

Writes Benchmarks/work/deit_base_patch16_224.pth (timm's DeiT-B with random weights, seeded,
saved as Facebook's release is: {"model": state_dict}, 346 MB) and a legacy-layout copy, then runs
the contenders in alternating order within each round, every output removed before each run. Per
run: wall time of the whole process and its peak RSS (GNU time). Prints a Markdown table
(medians over the rounds; the ratio column is the median of the per-round ratios) and writes
Benchmarks/results/<date>-pth.json.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def make_checkpoints(work):
    import timm
    import torch

    work.mkdir(parents=True, exist_ok=True)
    zip_path, legacy_path = work / "deit_base_patch16_224.pth", work / "deit_base_patch16_224-legacy.pth"
    if not zip_path.exists() or not legacy_path.exists():
        torch.manual_seed(0)
        model = timm.create_model("deit_base_patch16_224", pretrained=False)
        sd = model.state_dict()
        torch.save({"model": sd}, zip_path)
        torch.save({"model": sd}, legacy_path, _use_new_zipfile_serialization=False)
    return zip_path, legacy_path


def python_convert(args):
    """The Python contender, timed inside the process too (after its imports)."""
    import torch
    from safetensors.torch import save_file

    start = time.perf_counter()
    checkpoint = torch.load(args.source, weights_only=True, map_location="cpu")
    save_file(checkpoint["model"], args.out)
    if args.fsync:
        fd = os.open(args.out, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    print(json.dumps({"seconds": time.perf_counter() - start}))


def measure(cmd, out, rss_file):
    """Wall seconds and peak RSS (MB) of one process; the output file is removed first. The
    RSS comes from GNU time, not from this process's wait4: Linux counts a child's pages from
    before its exec (a fork of this Python, which has imported torch) in its maximum."""
    if os.path.exists(out):
        os.remove(out)
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file] + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}\n{done.stderr.decode()}")
    return wall, int(Path(rss_file).read_text().split()[-1]) / 1024


def cpu_name():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def run(args):
    work = Path(args.work)
    zip_path, legacy_path = make_checkpoints(work)
    py, me = sys.executable, str(Path(__file__).resolve())
    bundle, plain, pyout = str(work / "pth-out.idlevit.safetensors"), str(work / "pth-out.safetensors"), str(work / "pth-py.safetensors")
    contenders = [
        ("idlevit convert .pth -> bundle (r = 0.7)", [args.idlevit, "convert", str(zip_path), "--keep-ratio", "0.7", "-o", bundle], bundle),
        ("idlevit convert .pth --to safetensors", [args.idlevit, "convert", str(zip_path), "--to", "safetensors", "-o", plain], plain),
        ("idlevit convert legacy .pth -> bundle (r = 0.7)", [args.idlevit, "convert", str(legacy_path), "--keep-ratio", "0.7", "-o", bundle], bundle),
        ("python torch.load(weights_only=True) + save_file", [py, me, "python", str(zip_path), pyout], pyout),
        ("python torch.load(weights_only=True) + save_file + fsync", [py, me, "python", str(zip_path), pyout, "--fsync"], pyout),
    ]
    results = {label: {"wall": [], "rss": []} for label, _, _ in contenders}
    for round_index in range(args.rounds + 1):  # round 0 warms the page cache and is dropped
        order = contenders if round_index % 2 == 0 else list(reversed(contenders))
        for label, cmd, out in order:
            wall, rss = measure(cmd, out, str(work / "rss.txt"))
            if round_index > 0:
                results[label]["wall"].append(wall)
                results[label]["rss"].append(rss)
        print(f"round {round_index}: " + ", ".join(f"{results[l]['wall'][-1]:.3f}s" if round_index else "warm-up" for l, _, _ in contenders[:1]), flush=True)
    for out in [out for _, _, out in contenders] + [str(work / "rss.txt")]:
        if os.path.exists(out):
            os.remove(out)
    size = zip_path.stat().st_size / 1e6
    python = "python torch.load(weights_only=True) + save_file"
    rows = []
    for label, _, _ in contenders:
        r = results[label]
        ratios = [a / b for a, b in zip(r["wall"], results[python]["wall"])]
        rows.append({"contender": label, "wall_s": statistics.median(r["wall"]), "peak_rss_mb": statistics.median(r["rss"]),
                     "wall_ratio_to_python": statistics.median(ratios), "walls": r["wall"], "rss": r["rss"]})
    cpu = cpu_name()
    print(f"\nDeiT-B .pth ({size:.0f} MB, {{'model': state_dict}}), {args.rounds} rounds, medians; {cpu}\n")
    print("| contender | wall | / python | peak RSS |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['contender']} | {row['wall_s']:.3f} s | {row['wall_ratio_to_python']:.2f} | {row['peak_rss_mb']:.0f} MB |")
    out = HERE / "results" / f"{datetime.date.today().isoformat()}-pth.json"
    out.write_text(json.dumps({"cpu": cpu, "model_mb": size, "rounds": args.rounds, "rows": rows}, indent=1) + "\n")
    print(f"\nwrote {out.relative_to(HERE.parent)}")


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("python")
    p.add_argument("source")
    p.add_argument("out")
    p.add_argument("--fsync", action="store_true")
    parser.add_argument("--idlevit", default=str(HERE.parent / ".build/release/idlevit"))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--work", default=str(HERE / "work"))
    args = parser.parse_args()
    if args.command == "python":
        python_convert(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
