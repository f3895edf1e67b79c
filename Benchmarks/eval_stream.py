#!/usr/bin/env python3
"""`idlevit eval` streaming targets (issue 17), measured:

1. throughput: `eval` at batch 32 end to end (images / wall seconds, decoding included) within 10%
   of `bench` at batch 32 on the same model and threads (decoding hidden behind compute);
2. memory: peak RSS of `eval` flat (within 50 MB) from 100 to 2,000 images.

    /work/venv/bin/python Benchmarks/eval_stream.py [--idlevit .build/release/idlevit] [--rounds 3]

Writes under /tmp/idlevit-eval-bench (not the repository): DeiT-S with random weights
(timm deit_small_patch16_224, pretrained=False, seed 0) as safetensors, and ImageNet-layout folders
of 100 and 2,000 distinct JPEGs at ImageNet's typical size (500x375 or 375x500, quality 90,
seeded crops of the photographs in Fixtures/images). Rounds alternate the contenders (bench,
eval on 100, eval on 2,000); a ratio is taken within a round, and the medians are reported.
OPENBLAS_CORETYPE is removed from every child's environment (as Benchmarks/compare.py does).
Peak RSS is the child's ru_maxrss from wait4.
"""

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = Path("/tmp/idlevit-eval-bench")
PHOTOS = ["chelsea.png", "rocket.jpg", "astronaut_progressive.jpg", "camera_gray.jpg"]


def make_model(path):
    if path.exists():
        return
    import torch
    import timm
    from safetensors.torch import save_file
    torch.manual_seed(0)
    model = timm.create_model("deit_small_patch16_224", pretrained=False).eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))


def make_folder(folder, count, seed):
    marker = folder / ".complete"
    if marker.exists():
        return
    from PIL import Image
    rng = random.Random(seed)
    synsets = (ROOT / "Sources" / "Images" / "ImageNetSynsets.swift").read_text()
    wnids = [w.strip('",') for w in synsets.split() if w.startswith('"n') and len(w.strip('",')) == 9]
    assert len(wnids) == 1000
    photos = [Image.open(ROOT / "Fixtures" / "images" / p).convert("RGB") for p in PHOTOS]
    for i in range(count):
        photo = photos[rng.randrange(len(photos))]
        w, h = photo.size
        cw, ch = rng.randint(w // 3, w), rng.randint(h // 3, h)
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        size = (500, 375) if rng.random() < 0.75 else (375, 500)
        image = photo.crop((x, y, x + cw, y + ch)).resize(size, Image.BICUBIC)
        target = folder / wnids[rng.randrange(1000)] / f"ILSVRC2012_val_{i:08d}.JPEG"
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target, quality=90)
    marker.write_text("ok\n")


def run_measured(command):
    """Runs a child with stdout to a file; returns (its JSON output, its peak RSS in MB)."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    pid = os.fork()
    if pid == 0:
        fd = os.open(str(WORK / "out.json"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        os.execve(command[0], command, env)
    _, status, usage = os.wait4(pid, 0)
    if status != 0:
        sys.exit(f"{' '.join(command)} failed with status {status}")
    return json.loads((WORK / "out.json").read_text()), usage.ru_maxrss / 1024


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--idlevit", default=str(ROOT / ".build" / "release" / "idlevit"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep-ratio", default=None)
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    model = WORK / "deit_s.safetensors"
    make_model(model)
    small, large = WORK / "val-100", WORK / "val-2000"
    make_folder(small, 100, 100)
    make_folder(large, 2000, 2000)
    schedule = ["--keep-ratio", args.keep_ratio] if args.keep_ratio else []
    common = ["--batch", str(args.batch), "--threads", str(args.threads), *schedule]
    flags = [l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("flags")][0]
    print(f"CPU: {cpu_model()} ({os.cpu_count()} vCPUs, avx512f: {'avx512f' in flags}); "
          f"OPENBLAS_CORETYPE unset; batch {args.batch}, {args.threads} threads{', r = ' + args.keep_ratio if args.keep_ratio else ', dense'}")

    rows = []
    for round_index in range(args.rounds):
        bench, bench_rss = run_measured([args.idlevit, "bench", str(model), *common, "--runs", "5", "--warmup", "1", "--json"])
        e100, rss100 = run_measured([args.idlevit, "eval", str(model), "--images", str(small), *common, "--json", "--progress", "never"])
        e2000, rss2000 = run_measured([args.idlevit, "eval", str(model), "--images", str(large), *common, "--json", "--progress", "never"])
        row = {
            "bench_ips": bench["images_per_second"],
            "eval2000_e2e_ips": e2000["images"] / e2000["seconds"],
            "eval2000_model_ips": e2000["images_per_second"],
            "eval100_e2e_ips": e100["images"] / e100["seconds"],
            "rss_bench_mb": bench_rss, "rss100_mb": rss100, "rss2000_mb": rss2000,
        }
        row["ratio_e2e"] = row["eval2000_e2e_ips"] / row["bench_ips"]
        row["rss_growth_mb"] = rss2000 - rss100
        rows.append(row)
        print(f"round {round_index + 1}: bench {row['bench_ips']:.2f} img/s; eval 2000 {row['eval2000_e2e_ips']:.2f} img/s end to end "
              f"({row['ratio_e2e']:.3f} of bench; model-only {row['eval2000_model_ips']:.2f}); eval 100 {row['eval100_e2e_ips']:.2f}; "
              f"peak RSS bench {bench_rss:.0f} MB, eval 100 {rss100:.0f} MB, eval 2000 {rss2000:.0f} MB", flush=True)
    median = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print("medians:", json.dumps({k: round(v, 3) for k, v in median.items()}))
    stamp = time.strftime("%Y-%m-%d")
    out = ROOT / "Benchmarks" / "results" / f"{stamp}-eval.json"
    out.write_text(json.dumps({"cpu": cpu_model(), "args": vars(args), "rounds": rows, "medians": median}, indent=1) + "\n")
    print("written", out.relative_to(ROOT))


if __name__ == "__main__":
    main()
