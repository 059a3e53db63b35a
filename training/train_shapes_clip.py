"""Trains cliprt's default model, `shapes`: a small real CLIP on the Shapes set.

    python -m training.train_shapes_clip --out training/out/shapes-checkpoint

The model is a transformers CLIPModel (ViT vision tower at 64 px, patch 16; a 2-layer,
width-32 text tower over CLIP's real 49,408-token BPE vocabulary, context 77), trained
contrastively from scratch with CLIP's symmetric InfoNCE and a learnable logit scale on
images drawn on the fly by `cliprt.shapes` (fresh images every step, so no epochs and no
overfitting). The 8 HELD_OUT colour-shape combinations never appear in training.

One deviation from CLIP's loss: Shapes captions repeat within a batch (a batch of 256
draws from 80 size-colour-shape triples), so a caption's positives are all the images it
truly describes, not only its own; targets are uniform over those. With one-hot targets
the identical captions of other images are pushed away as negatives, which only adds noise.

Seeded: the same --seed, --threads and torch version give the same checkpoint (CPU). Writes the HF checkpoint folder (config.json, model.safetensors,
tokenizer files, preprocessor_config.json) and train_figures.json beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cliprt import shapes

IMAGE_SIZE = 64
# CLIPImageProcessor's defaults (OpenAI's statistics): the runtime normalises with these.
IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)


def shapes_clip_config() -> Any:
    """The architecture of the `shapes` model (a transformers CLIPConfig)."""
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config={
            # The token table dominates the size: 49,408 x 32 x 4 bytes = 6.3 MB in fp32.
            "hidden_size": 32,
            "intermediate_size": 128,
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "max_position_embeddings": 77,
        },
        vision_config={
            "hidden_size": 128,
            "intermediate_size": 512,
            "num_attention_heads": 4,
            "num_hidden_layers": 4,
            "image_size": IMAGE_SIZE,
            "patch_size": 16,
        },
        projection_dim=64,
    )


def pixels(images: list[Any]) -> torch.Tensor:
    """CLIP's normalisation of IMAGE_SIZE-square PIL images, as (n, 3, H, W) float32.

    Shapes images are drawn at IMAGE_SIZE, where CLIPImageProcessor's resize and crop are
    identities, so this equals the processor's output (up to float rounding).
    """
    arr = np.stack([np.asarray(im, dtype=np.uint8) for im in images]).astype(np.float32) / 255.0
    arr = (arr - np.array(IMAGE_MEAN, np.float32)) / np.array(IMAGE_STD, np.float32)
    return torch.from_numpy(arr.transpose(0, 3, 1, 2).copy())


class CaptionTokens:
    """input_ids of captions with CLIP's tokenizer, padded with EOS to the longest in the
    batch (the causal mask and first-EOS pooling make padding invisible), cached."""

    def __init__(self, tokenizer_json: Path) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(tokenizer_json))
        self._cache: dict[str, list[int]] = {}

    def __call__(self, texts: list[str]) -> torch.Tensor:
        ids = []
        for t in texts:
            if t not in self._cache:
                self._cache[t] = self._tok.encode(t).ids[:77]
            ids.append(self._cache[t])
        width = max(len(i) for i in ids)
        out = torch.full((len(ids), width), 49407, dtype=torch.long)
        for row, i in enumerate(ids):
            out[row, : len(i)] = torch.tensor(i)
        return out


def _states(template: str, word: str) -> bool:
    return "{" + word + "}" in template


def template_of(spec: shapes.ShapeSpec, template: int) -> str:
    """The template text that spec.caption(template) fills."""
    templates = shapes.TEMPLATES if spec.colour != shapes.UNNAMED else shapes.SHAPE_TEMPLATES
    return templates[template % len(templates)]


def positives(specs: list[shapes.ShapeSpec], templates: list[int]) -> torch.Tensor:
    """(n, n) bool: caption i (spec i's caption(templates[i])) truly describes image j.

    A caption of an unnamed-colour image states no colour; a named-colour caption never
    describes an unnamed-colour image (its colour has no name)."""

    def codes(attr: str) -> np.ndarray:
        return np.array([hash(getattr(s, attr)) for s in specs])

    colour, shape, size, bg = codes("colour"), codes("shape"), codes("size"), codes("background")
    used = [template_of(s, t) for s, t in zip(specs, templates, strict=True)]
    says_colour, says_shape, says_size, says_bg = (
        np.array([_states(t, word) for t in used]) for word in ("colour", "shape", "size", "bg")
    )

    def same(c: np.ndarray) -> np.ndarray:
        return c[:, None] == c[None, :]

    pos = np.ones((len(specs), len(specs)), dtype=bool)
    for says, code in (
        (says_colour, colour),
        (says_shape, shape),
        (says_size, size),
        (says_bg, bg),
    ):
        pos &= ~says[:, None] | same(code)
    return torch.from_numpy(pos)


def clip_loss(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    logit_scale: torch.Tensor,
    pos: torch.Tensor,
) -> torch.Tensor:
    """CLIP's symmetric InfoNCE on normalised embeddings, targets uniform over positives."""
    logits_t2i = logit_scale.exp().clamp(max=100.0) * text_embeds @ image_embeds.T
    target = pos.float()
    loss_t2i = -(F.log_softmax(logits_t2i, dim=1) * target / target.sum(1, keepdim=True)).sum(1)
    target_i2t = target.T
    loss_i2t = -(
        F.log_softmax(logits_t2i.T, dim=1) * target_i2t / target_i2t.sum(1, keepdim=True)
    ).sum(1)
    return (loss_t2i.mean() + loss_i2t.mean()) / 2


def save_checkpoint(model: Any, folder: Path) -> None:
    """Writes the complete HF checkpoint folder: weights, config, tokenizer, processor."""
    from transformers import CLIPImageProcessor

    from cliprt.export.clip_vocab import save_clip_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder), safe_serialization=True)
    save_clip_tokenizer(folder, model_max_length=77)
    CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_mean=list(IMAGE_MEAN),
        image_std=list(IMAGE_STD),
    ).save_pretrained(str(folder))


def train(
    out: Path,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    threads: int,
    unnamed_fraction: float = 0.25,
    log_every: int = 50,
) -> dict[str, Any]:
    """Trains from scratch and saves the checkpoint to `out`; returns the training figures."""
    import transformers
    from transformers import CLIPModel

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    config = shapes_clip_config()
    model = CLIPModel(config)
    # Tokenizer files first: training tokenises with the very tokenizer.json that ships.
    save_checkpoint(model, out)
    tokens = CaptionTokens(out / "tokenizer.json")

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [
        p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)
    ]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    warmup = max(1, steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        return lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    rng = np.random.default_rng(seed)
    model.train()
    t0 = time.perf_counter()
    render_s = 0.0
    losses = []
    for step in range(steps):
        t_r = time.perf_counter()
        n_unnamed = int(batch_size * unnamed_fraction)
        specs = shapes.sample_specs(
            batch_size - n_unnamed, seed=int(rng.integers(2**31)), split="train"
        )
        specs += [
            shapes.unnamed_colour_spec(rng, shape=shapes.SHAPES[int(rng.integers(6))])
            for _ in range(n_unnamed)
        ]
        templates = [int(t) for t in rng.integers(len(shapes.TEMPLATES), size=batch_size)]
        px = pixels([shapes.render(s, IMAGE_SIZE) for s in specs])
        ids = tokens([s.caption(t) for s, t in zip(specs, templates, strict=True)])
        pos = positives(specs, templates)
        render_s += time.perf_counter() - t_r

        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        img = F.normalize(model.get_image_features(pixel_values=px), dim=-1)
        txt = F.normalize(model.get_text_features(input_ids=ids), dim=-1)
        loss = clip_loss(img, txt, model.logit_scale, pos)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100.0))
        losses.append(loss.item())
        if step % log_every == 0 or step == steps - 1:
            el = time.perf_counter() - t0
            print(
                f"step {step:5d}/{steps}  loss {np.mean(losses[-log_every:]):.4f}  "
                f"logit_scale {model.logit_scale.exp().item():6.2f}  "
                f"lr {lr_at(step):.2e}  {el:6.1f} s",
                flush=True,
            )
    train_s = time.perf_counter() - t0
    model.eval()
    save_checkpoint(model, out)
    weights = out / "model.safetensors"
    figures = {
        "seed": seed,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "unnamed_colour_fraction": unnamed_fraction,
        "images_seen": steps * batch_size,
        "train_seconds": round(train_s, 1),
        "render_seconds": round(render_s, 1),
        "final_loss": round(float(np.mean(losses[-log_every:])), 4),
        "logit_scale": round(float(model.logit_scale.exp()), 3),
        "parameters": sum(p.numel() for p in model.parameters()),
        "safetensors_bytes": weights.stat().st_size,
        "held_out_combos": [list(c) for c in shapes.HELD_OUT],
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "torch_threads": threads,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
    }
    (out / "train_figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def build_parser() -> argparse.ArgumentParser:
    """The command line; its defaults are the shipped model's training run (recorded in
    training/shapes_figures.json), so the documented command reproduces it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("training/out/shapes-checkpoint"))
    parser.add_argument("--steps", type=int, default=1400)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    # One thread: on a busy 2-core box two threads wait on each other at every op and
    # train ~2.5x slower per CPU-second; on an idle box 2 threads are ~1.5x faster.
    # The thread count changes float reductions, hence the last bits of the weights.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--unnamed-fraction",
        type=float,
        default=0.25,
        help="share of each batch drawn in unnamed colours, captioned by shape only",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    figures = train(
        args.out,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        threads=args.threads,
        unnamed_fraction=args.unnamed_fraction,
    )
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
