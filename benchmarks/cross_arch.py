"""Embeddings of one model on two machines (e.g. x86-64 and aarch64 under qemu), compared.

    python benchmarks/cross_arch.py dump shapes --precision int8 -o x86.npz      # machine A
    python benchmarks/cross_arch.py dump shapes --precision int8 -o arm.npz      # machine B
    python benchmarks/cross_arch.py compare x86.npz arm.npz

`dump` embeds a fixed, generated input set with the runtime (cliprt.load): the 96 images
of the shapes retrieval gallery (seed 0) in batches of 8, and the 48 colour-shape label
prompts in one batch; it stores the L2-normalised embeddings with the machine's name.
`compare` prints, per tower, the min cosine and the max abs diff between the two files.
Torch-free: it runs wherever the runtime runs.
"""

from __future__ import annotations

import argparse
import platform
import sys

import numpy as np


def dump(model: str, precision: str, out: str, threads: int | None) -> None:
    import onnxruntime as ort

    import cliprt
    from cliprt.shapes import gallery, label_prompts

    images, _ = gallery(seed=0)
    texts = label_prompts()
    with cliprt.load(model, precision=precision, device="cpu", threads=threads) as m:
        image_emb = m.encode_images(images, batch_size=8)
        text_emb = m.encode_texts(texts)
    np.savez(
        out,
        image=image_emb,
        text=text_emb,
        machine=np.array(platform.machine()),
        onnxruntime=np.array(ort.__version__),
        precision=np.array(precision),
    )
    print(f"{platform.machine()}: {len(images)} images, {len(texts)} texts, {precision} -> {out}")


def compare(a_path: str, b_path: str) -> None:
    a, b = np.load(a_path), np.load(b_path)
    print(
        f"{a_path} ({a['machine']}, onnxruntime {a['onnxruntime']}) vs "
        f"{b_path} ({b['machine']}, onnxruntime {b['onnxruntime']}), {a['precision']}"
    )
    for tower in ("image", "text"):
        x, y = a[tower].astype(np.float64), b[tower].astype(np.float64)
        norms = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)
        # A zero row (a tower that produced nothing usable) has no cosine: NaN, reported.
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = (x * y).sum(1) / norms
        print(
            f"  {tower:5s} n={len(x)}: min cosine {cos.min():.7f}, max abs diff "
            f"{np.abs(x - y).max():.2e}, zero rows {int((norms == 0).sum())}, "
            "same argmax over texts: "
            + (
                f"{(np.argmax(a['image'] @ a['text'].T, 1) == np.argmax(b['image'] @ b['text'].T, 1)).mean():.3f}"
                if tower == "image"
                else "-"
            )
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("model")
    d.add_argument("--precision", default="int8")
    d.add_argument("--threads", type=int, default=None)
    d.add_argument("-o", "--out", required=True)
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    ns = p.parse_args(argv)
    if ns.cmd == "dump":
        dump(ns.model, ns.precision, ns.out, ns.threads)
    else:
        compare(ns.a, ns.b)
    return 0


if __name__ == "__main__":
    sys.exit(main())
