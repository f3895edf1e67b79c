"""Checks ONNX files written by `idlevit convert --to onnx` in ONNX Runtime.

For each case (an exported model, the fixture input, the PyTorch reference it must match):
  1. onnx.checker.check_model(full_check=True) on the file (external data included);
  2. the graph contract (DESIGN.md §1): one input `pixel_values` float [batch, 3, H, W] with a
     symbolic batch dimension; first output `logits` float [batch, classes]; every other output
     a `blocks.{i}.selected` int64 [batch, S], and exactly the idle layers the reference has;
  3. ONNX Runtime (CPU) runs the file at batch 1 and batch 2 (the first image, then both): the
     logits are within --atol (1e-4) of the reference, and every image's selected set in every
     idle layer equals the reference's (order free).

Expected values come from the committed PyTorch references (Fixtures/*/reference.safetensors,
idle-*.safetensors), never from idlevit. Needs onnx, onnxruntime, numpy and safetensors (no
torch). Exits 1 when any case fails, printing one line per case.

  python Fixtures/check_onnx_export.py --case OUT.onnx INPUT.safetensors REFERENCE.safetensors [--case ...]
"""

from __future__ import annotations

import argparse
import os
import re
import sys

import numpy as np
import onnx
import onnxruntime as ort
from safetensors.numpy import load_file

SELECTED = re.compile(r"^blocks\.(\d+)\.selected$")


def dims(value_info) -> list:
    """Shape of a graph input/output: ints for fixed dimensions, strings for symbolic ones."""
    out = []
    for d in value_info.type.tensor_type.shape.dim:
        out.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?"))
    return out


def check_contract(model: onnx.ModelProto, pixels: np.ndarray, reference: dict) -> list:
    problems = []
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if [i.name for i in inputs] != ["pixel_values"]:
        problems.append(f"inputs are {[i.name for i in inputs]}, expected ['pixel_values']")
    else:
        shape = dims(inputs[0])
        if inputs[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            problems.append("pixel_values is not float")
        if len(shape) != 4 or not isinstance(shape[0], str) or shape[1:] != list(pixels.shape[1:]):
            problems.append(f"pixel_values has shape {shape}, expected [batch, {', '.join(map(str, pixels.shape[1:]))}] with a symbolic batch")
    outputs = list(graph.output)
    if not outputs or outputs[0].name != "logits":
        problems.append(f"first output is {outputs[0].name if outputs else None}, expected logits")
    else:
        shape = dims(outputs[0])
        if outputs[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT or len(shape) != 2 \
                or not isinstance(shape[0], str) or shape[1] != reference["logits"].shape[1]:
            problems.append(f"logits has shape {shape}, expected float [batch, {reference['logits'].shape[1]}]")
    expected = sorted((k for k in reference if SELECTED.match(k)), key=lambda k: int(SELECTED.match(k).group(1)))
    found = [o.name for o in outputs[1:]]
    if found != expected:
        problems.append(f"selection outputs {found}, the reference has {expected}")
    for o in outputs[1:]:
        shape = dims(o)
        if not SELECTED.match(o.name):
            problems.append(f"unexpected output {o.name}")
        elif o.type.tensor_type.elem_type != onnx.TensorProto.INT64 or len(shape) != 2 or not isinstance(shape[0], str):
            problems.append(f"{o.name} is not int64 [batch, S] (shape {shape})")
    return problems


def check_case(path: str, input_path: str, reference_path: str, atol: float) -> tuple:
    """Returns (passed, summary line)."""
    onnx.checker.check_model(path, full_check=True)
    model = onnx.load(path, load_external_data=False)
    pixels = load_file(input_path)["pixel_values"]
    reference = load_file(reference_path)
    problems = check_contract(model, pixels, reference)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    worst = 0.0
    layers = len(names) - 1
    for batch in (1, 2):
        results = dict(zip(names, session.run(None, {"pixel_values": pixels[:batch]})))
        logits = results["logits"]
        if logits.shape != reference["logits"][:batch].shape:
            problems.append(f"batch {batch}: logits shape {logits.shape}, expected {reference['logits'][:batch].shape}")
            continue
        error = float(np.abs(logits.astype(np.float64) - reference["logits"][:batch].astype(np.float64)).max())
        worst = max(worst, error)
        if not error <= atol:
            problems.append(f"batch {batch}: logits differ by {error:.3g} > {atol}")
        for name in names[1:]:
            ours, theirs = results[name], reference[name][:batch]
            if ours.shape != theirs.shape:
                problems.append(f"batch {batch}: {name} has shape {ours.shape}, the reference {theirs.shape}")
                continue
            for image in range(batch):
                if set(ours[image].tolist()) != set(theirs[image].tolist()):
                    differing = len(set(ours[image].tolist()) ^ set(theirs[image].tolist())) // 2
                    problems.append(f"batch {batch}: {name} image {image}: {differing} tokens differ from the reference")
    selections = f", selections identical in {layers} idle layers" if layers and not problems else ""
    line = f"{os.path.basename(path)}: max |logits - reference| {worst:.2e} at batch 1 and 2{selections}"
    if problems:
        line += ": FAILED: " + "; ".join(problems)
    return not problems, line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", nargs=3, action="append", metavar=("ONNX", "INPUT", "REFERENCE"), required=True)
    parser.add_argument("--atol", type=float, default=1e-4)
    args = parser.parse_args()
    failed = 0
    for path, input_path, reference_path in args.case:
        try:
            passed, line = check_case(path, input_path, reference_path, args.atol)
        except Exception as error:  # a checker or runtime error fails the case, with its message
            passed, line = False, f"{os.path.basename(path)}: FAILED: {type(error).__name__}: {error}"
        print(line)
        failed += not passed
    print(f"check_onnx_export: {len(args.case) - failed} of {len(args.case)} exports passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
