"""Writes the small hostile HDF5 files under Fixtures/hostile/ for the HDF5 importer tests.

Each file is a tiny DeiT state dict (image 8, patch 4, dim 8, one block, 2 classes; heads
given by the root attribute `num_heads`, since dim 8 is not a multiple of DeiT's 64) broken
in exactly one way; `valid.h5` is the unbroken control, and `float64.h5`, `float32-be.h5`,
`float16-be.h5` hold the same tensors in the other element types and byte orders the
importer converts. `newer-format.h5` is written with libver='latest' and gzip (its HDF5 2.0 chunked
layout messages are what libhdf5 1.10 cannot read). `heap-crash.h5` and `heap-loop.h5` are
valid.h5 with one bit flipped in the global heap that holds its string attributes: Debian's
libhdf5 1.10.8 dereferences NULL on the first and loops forever on the second (found by
Benchmarks/hdf5_acceptance.sh's corruption corpus). Corruptions of real files
(truncation, bit flips, zeroed superblock) are made by the tests themselves from the
fixtures, so they need no files here.

    /work/venv/bin/python Fixtures/make_hostile_h5.py     # h5py 3.16, numpy 2
"""
from pathlib import Path

import h5py
import numpy as np

HERE = Path(__file__).resolve().parent / "hostile"
DIM, PATCH, IMAGE, CLASSES, MLP = 8, 4, 8, 2, 16
TOKENS = (IMAGE // PATCH) ** 2 + 1


def state_dict():
    rng = np.random.default_rng(4)
    shapes = {
        "cls_token": (1, 1, DIM), "pos_embed": (1, TOKENS, DIM),
        "patch_embed.proj.weight": (DIM, 3, PATCH, PATCH), "patch_embed.proj.bias": (DIM,),
        "blocks.0.norm1.weight": (DIM,), "blocks.0.norm1.bias": (DIM,),
        "blocks.0.attn.qkv.weight": (3 * DIM, DIM), "blocks.0.attn.qkv.bias": (3 * DIM,),
        "blocks.0.attn.proj.weight": (DIM, DIM), "blocks.0.attn.proj.bias": (DIM,),
        "blocks.0.norm2.weight": (DIM,), "blocks.0.norm2.bias": (DIM,),
        "blocks.0.mlp.fc1.weight": (MLP, DIM), "blocks.0.mlp.fc1.bias": (MLP,),
        "blocks.0.mlp.fc2.weight": (DIM, MLP), "blocks.0.mlp.fc2.bias": (DIM,),
        "norm.weight": (DIM,), "norm.bias": (DIM,),
        "head.weight": (CLASSES, DIM), "head.bias": (CLASSES,),
    }
    return {name: (rng.standard_normal(shape) * 0.1).astype(np.float32) for name, shape in shapes.items()}


def write(name, edit=None, dtype=None, libver="earliest", gzip=False):
    """Writes the flat state dict through `edit(file, tensors)`, which breaks one thing."""
    path = HERE / name
    tensors = state_dict()
    if dtype is not None:
        tensors = {key: value.astype(dtype) for key, value in tensors.items()}
    with h5py.File(path, "w", libver=libver, track_order=False) as f:
        f.attrs["num_heads"] = "1"
        f.attrs["purpose"] = "idlevit hostile HDF5 fixture: " + name
        if edit is not None:
            edit(f, tensors)
        for key, value in tensors.items():
            options = dict(chunks=True, compression="gzip") if gzip else {}
            f.create_dataset(key, data=value, track_times=False, **options)
    print(f"{path.relative_to(HERE.parent)}: {path.stat().st_size} bytes")


def wrong_shape(f, tensors):
    tensors["blocks.0.attn.qkv.weight"] = tensors["blocks.0.attn.qkv.weight"][:, :7].copy()


def missing(f, tensors):
    del tensors["blocks.0.mlp.fc1.weight"]


def integer(f, tensors):
    tensors["blocks.0.attn.proj.bias"] = np.arange(DIM, dtype=np.int64)


def external_storage(f, tensors):
    # Raw bytes from another file: the reader must never follow this.
    del tensors["head.bias"]
    f.create_dataset("head.bias", shape=(CLASSES,), dtype=np.float32, external=[("/etc/hostname", 0, 8)])


def external_link(f, tensors):
    del tensors["norm.bias"]
    f["norm.bias"] = h5py.ExternalLink("/tmp/elsewhere.h5", "/norm.bias")


def partial_chunks(f, tensors):
    # Only the first half is written: the other chunks do not exist and would read as zeros.
    value = tensors.pop("blocks.0.attn.qkv.bias")
    dataset = f.create_dataset("blocks.0.attn.qkv.bias", shape=value.shape, dtype=value.dtype, chunks=(4,))
    dataset[:12] = value[:12]


def lzf(f, tensors):
    value = tensors.pop("blocks.0.mlp.fc2.weight")
    f.create_dataset("blocks.0.mlp.fc2.weight", data=value, chunks=True, compression="lzf")


def flip_global_heap(name, offset, mask):
    """valid.h5 with one bit of its global heap collection ("GCOL") flipped."""
    data = bytearray((HERE / "valid.h5").read_bytes())
    heap = data.find(b"GCOL")
    assert heap > 0, "valid.h5 has no global heap"
    # Collection: signature, version, 3 reserved, size (8); then object 1: index (2),
    # reference count (2), reserved (4), size (8) at heap + 24.
    data[heap + offset] ^= mask
    (HERE / name).write_bytes(bytes(data))
    print(f"hostile/{name}: {len(data)} bytes")


if __name__ == "__main__":
    HERE.mkdir(exist_ok=True)
    write("valid.h5")
    write("wrong-shape.h5", wrong_shape)
    write("missing-dataset.h5", missing)
    write("integer-dataset.h5", integer)
    write("external-storage.h5", external_storage)
    write("external-link.h5", external_link)
    write("lzf-filter.h5", lzf)
    write("partial-chunks.h5", partial_chunks)
    write("float64.h5", dtype=np.float64)
    write("float32-be.h5", dtype=">f4")
    write("float16-be.h5", dtype=">f2")
    write("newer-format.h5", libver="latest", gzip=True)
    flip_global_heap("heap-crash.h5", 26, 0x01)  # object 1's size grows by 64 KiB
    flip_global_heap("heap-loop.h5", 25, 0x02)  # object 1's size grows by 512 bytes
