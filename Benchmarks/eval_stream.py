#!/usr/bin/env python3
"""`idlevit eval` streaming targets (issue 17), measured:

1. throughput: `eval` at batch 32 end to end (images / wall seconds of the pass, decoding
   included) within 10% of `bench` at batch 32 on the same model and threads (decoding hidden
   behind compute). Rounds alternate `bench --batch 32 --warmup 1 --runs 15` and `eval` over 512
   images (16 batches of 32): the same 512 images through the model, each with one first batch
   that plans and touches its memory. A ratio is taken within a round; the medians over rounds
   are reported, with the CPU seconds of both (what decoding adds, whatever share of the shared
   host each process got) and eval's own count of the decoders' CPU seconds.
2. memory: peak RSS of `eval` flat (within 50 MB) from 100 to 2,000 images (one run each, after
   the rounds; ru_maxrss of the child from wait4).

    /work/venv/bin/python Benchmarks/eval_stream.py [--idlevit .build/release/idlevit] [--rounds 5]

Writes under /tmp/idlevit-eval-bench (not the repository): DeiT-S with random weights
(timm deit_small_patch16_224, pretrained=False, seed 0) as safetensors, and ImageNet-layout folders
of 512, 100 and 2,000 distinct JPEGs at ImageNet's typical size (500x375 or 375x500, quality 90,
seeded crops of the photographs in Fixtures/images). OPENBLAS_CORETYPE is removed from every
child's environment (as Benchmarks/compare.py does). Results: Benchmarks/results/DATE-eval.json.
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
    """Runs a child with stdout to a file; returns (its JSON output, its rusage)."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    pid = os.fork()
    if pid == 0:
        fd = os.open(str(WORK / "out.json"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        os.execve(command[0], command, env)
    _, status, usage = os.wait4(pid, 0)
    if status != 0:
        sys.exit(f"{' '.join(command)} failed with status {status}")
    return json.loads((WORK / "out.json").read_text()), usage


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--idlevit", default=str(ROOT / ".build" / "release" / "idlevit"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep-ratio", default=None)
    parser.add_argument("--skip-memory", action="store_true", help="only the throughput rounds")
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    model = WORK / "deit_s.safetensors"
    make_model(model)
    timed, small, large = WORK / "val-512", WORK / "val-100", WORK / "val-2000"
    make_folder(timed, 512, 512)
    make_folder(small, 100, 100)
    make_folder(large, 2000, 2000)
    schedule = ["--keep-ratio", args.keep_ratio] if args.keep_ratio else []
    common = ["--batch", str(args.batch), "--threads", str(args.threads), *schedule]
    flags = [l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("flags")][0]
    print(f"CPU: {cpu_model()} ({os.cpu_count()} vCPUs, avx512f: {'avx512f' in flags}); "
          f"OPENBLAS_CORETYPE unset; batch {args.batch}, {args.threads} threads{', r = ' + args.keep_ratio if args.keep_ratio else ', dense'}")

    rows = []
    for round_index in range(args.rounds):
        # bench: 1 warm-up + 15 timed runs of 32 = 512 images through the model, like eval's 512.
        bench, bench_usage = run_measured([args.idlevit, "bench", str(model), *common, "--runs", "15", "--warmup", "1", "--json"])
        e512, eval_usage = run_measured([args.idlevit, "eval", str(model), "--images", str(timed), *common, "--json", "--progress", "never"])
        row = {"bench_ips": bench["images_per_second"], "eval_e2e_ips": e512["images"] / e512["seconds"],
               "eval_model_ips": e512["images_per_second"], "eval_decode_cpu_s": e512["decode_cpu_seconds"],
               "bench_cpu_s": bench_usage.ru_utime + bench_usage.ru_stime, "eval_cpu_s": eval_usage.ru_utime + eval_usage.ru_stime}
        row["ratio"] = row["eval_e2e_ips"] / row["bench_ips"]
        # CPU seconds for the same 512 images: what decoding adds, whatever share of the
        # machine each process got (the host is shared).
        row["cpu_ratio"] = row["eval_cpu_s"] / row["bench_cpu_s"]
        rows.append(row)
        print(f"round {round_index + 1}: bench {row['bench_ips']:.2f} img/s; eval 512 images {row['eval_e2e_ips']:.2f} img/s end to end "
              f"= {row['ratio']:.3f} of bench (model time only: {row['eval_model_ips']:.2f}); CPU seconds for 512 images: "
              f"bench {row['bench_cpu_s']:.1f}, eval {row['eval_cpu_s']:.1f} (x{row['cpu_ratio']:.3f}), of which decoding "
              f"{row['eval_decode_cpu_s']:.1f}", flush=True)
    median = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print("medians:", json.dumps({k: round(v, 3) for k, v in median.items()}), flush=True)
    memory = {}
    for name, folder in ([] if args.skip_memory else [("100", small), ("2000", large)]):
        result, usage = run_measured([args.idlevit, "eval", str(model), "--images", str(folder), *common, "--json", "--progress", "never"])
        rss = usage.ru_maxrss / 1024
        memory[name] = {"peak_rss_mb": rss, "images": result["images"], "seconds": result["seconds"],
                        "e2e_ips": result["images"] / result["seconds"]}
        print(f"eval {name} images: peak RSS {rss:.0f} MB, {memory[name]['e2e_ips']:.2f} img/s end to end", flush=True)
    if memory:
        print(f"peak RSS growth from 100 to 2,000 images: {memory['2000']['peak_rss_mb'] - memory['100']['peak_rss_mb']:+.0f} MB")
    stamp = time.strftime("%Y-%m-%d")
    out = ROOT / "Benchmarks" / "results" / f"{stamp}-eval{'-throughput' if args.skip_memory else ''}.json"
    out.write_text(json.dumps({"cpu": cpu_model(), "load_average_at_end": os.getloadavg(), "args": vars(args),
                               "rounds": rows, "medians": median, "memory": memory}, indent=1) + "\n")
    print("written", out.relative_to(ROOT))


if __name__ == "__main__":
    main()
