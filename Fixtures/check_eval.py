#!/usr/bin/env python3
"""Runs `idlevit eval` on every Fixtures/eval layout, whole, dense and IdleViT (r = 0.5, 0.7 with
--compare-dense), and compares every count with Fixtures/eval/expected.json (timm and the Python
IdleViT reference). The unit tests run only --limit subsets, which a debug build can afford.

    python3 Fixtures/check_eval.py [.build/release/idlevit]

Standard library only. Exit status 0 when every count matches, 1 otherwise.
"""

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BINARY = sys.argv[1] if len(sys.argv) > 1 else str(HERE.parent / ".build" / "release" / "idlevit")
MODEL = str(HERE / "tiny12" / "model.safetensors")
EXPECTED = json.loads((HERE / "eval" / "expected.json").read_text())
LAYOUTS = {
    "imagenet": ["--images", str(HERE / "eval" / "imagenet")],
    "by-index": ["--images", str(HERE / "eval" / "by-index")],
    "labels.csv": ["--images", str(HERE / "eval" / "imagenet"), "--labels-file", str(HERE / "eval" / "labels.csv")],
}

failures = 0
for name, arguments in LAYOUTS.items():
    totals = EXPECTED["layouts"][name]["totals"]
    failed = sorted(e["file"] for e in EXPECTED["layouts"][name]["files"] if e.get("failed"))
    for ratio in EXPECTED["keep_ratios"]:
        command = [BINARY, "eval", MODEL, *arguments, "--keep-ratio", ratio, "--compare-dense", "--json", "--progress", "never"]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            print(f"FAIL {name} r={ratio}: exit {result.returncode}: {result.stderr.strip()}")
            failures += 1
            continue
        got = json.loads(result.stdout)
        base = arguments[1]
        checks = [
            ("images", got["images"], totals["images"]),
            ("dense top-1", got["dense"]["top1_count"], totals["dense"]["top1"]),
            ("dense top-5", got["dense"]["top5_count"], totals["dense"]["top5"]),
            (f"idle r={ratio} top-1", got["top1_count"], totals["idle-" + ratio]["top1"]),
            (f"idle r={ratio} top-5", got["top5_count"], totals["idle-" + ratio]["top5"]),
            ("agreement", got["agreement_count"], totals["agreement-" + ratio]),
            ("failed", sorted(str(Path(f["file"]).relative_to(base)) for f in got["failed"]), failed),
        ]
        bad = [(what, ours, theirs) for what, ours, theirs in checks if ours != theirs]
        for what, ours, theirs in bad:
            print(f"FAIL {name} r={ratio} {what}: idlevit {ours}, expected {theirs}")
        failures += len(bad)
        if not bad:
            print(f"ok   {name} r={ratio}: {got['images']} images, dense top-1/top-5 {got['dense']['top1_count']}/{got['dense']['top5_count']}, "
                  f"idle {got['top1_count']}/{got['top5_count']}, agreement {got['agreement_count']} (as timm and the reference)")
sys.exit(1 if failures else 0)
