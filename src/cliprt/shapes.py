"""Shapes: the deterministic synthetic captioned image set behind cliprt's default model.

Each image is one coloured shape (6 shapes x 8 colours x 2 sizes) at a random position and
rotation on a textured, low-saturation background; its caption says what is drawn ("a photo
of a small red circle"). Everything follows from a seed: the same seed gives the same specs
and the same pixels on every machine, with Pillow and numpy only (no torch), so the demo
and the tests can draw images on runtime-only installs.

Eight colour-shape combinations (HELD_OUT) never appear in training: classifying their
images against all 48 colour-shape prompts measures compositional zero-shot accuracy.

    from cliprt import shapes
    images, specs = shapes.generate(8, seed=0)
    specs[0].caption()  # 'a photo of a large purple star'
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw

from cliprt.errors import InputError

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "diamond")

# Nominal RGB of each colour; rendered colours are jittered around these.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "orange": (245, 140, 20),
    "yellow": (240, 220, 40),
    "green": (40, 165, 60),
    "blue": (40, 80, 215),
    "purple": (135, 45, 185),
    "white": (240, 240, 240),
    "black": (20, 20, 20),
}

# The colour of a shape drawn in none of COLOURS (see unnamed_colour_spec).
UNNAMED = "unnamed"

SIZES: tuple[str, ...] = ("small", "large")
BACKGROUNDS: tuple[str, ...] = ("plain", "noisy", "striped", "checkered")

# One held-out shape per colour, spread so that every shape is held out at least once
# and every colour keeps five of its six shapes in training.
HELD_OUT: tuple[tuple[str, str], ...] = (
    ("red", "circle"),
    ("orange", "square"),
    ("yellow", "triangle"),
    ("green", "star"),
    ("blue", "cross"),
    ("purple", "diamond"),
    ("white", "square"),
    ("black", "star"),
)

ALL_COMBOS: tuple[tuple[str, str], ...] = tuple((c, s) for c in COLOURS for s in SHAPES)
TRAIN_COMBOS: tuple[tuple[str, str], ...] = tuple(c for c in ALL_COMBOS if c not in HELD_OUT)

# Caption templates; {size}/{bg} are detail a caption may or may not state.
TEMPLATES: tuple[str, ...] = (
    "a photo of a {size} {colour} {shape}",
    "a {size} {colour} {shape}",
    "a photo of a {colour} {shape}",
    "a {colour} {shape} on a {bg} background",
    "a picture of a {size} {colour} {shape} on a {bg} background",
    "a drawing of a {colour} {shape}",
)

# Captions of shapes drawn in an unnamed colour (see unnamed_colour_spec).
SHAPE_TEMPLATES: tuple[str, ...] = ("a photo of a {shape}", "a {size} {shape}")

# The zero-shot label prompt of a colour-shape combination.
LABEL_TEMPLATE = "a photo of a {colour} {shape}"

Split = Literal["train", "heldout", "all"]

# Radius of the shape's circumscribed circle, as a fraction of the image side.
_RADIUS = {"small": (0.14, 0.18), "large": (0.28, 0.34)}


@dataclass(frozen=True)
class ShapeSpec:
    """Everything that decides one image; `render` turns it into pixels.

    Positions and the radius are fractions of the image side, so one spec renders at
    any size.
    """

    shape: str
    colour: str
    size: str
    background: str
    cx: float
    cy: float
    radius: float
    rotation_deg: float
    rgb: tuple[int, int, int]
    bg_rgb: tuple[int, int, int]
    seed: int

    def caption(self, template: int = 0) -> str:
        """The caption of this image under TEMPLATES[template] (SHAPE_TEMPLATES for an
        unnamed colour)."""
        templates = TEMPLATES if self.colour != UNNAMED else SHAPE_TEMPLATES
        return _fill(
            templates[template % len(templates)],
            size=self.size,
            colour=self.colour,
            shape=self.shape,
            bg=self.background,
        )

    def label(self) -> str:
        """The zero-shot label prompt of this image's colour-shape combination."""
        return _fill(LABEL_TEMPLATE, colour=self.colour, shape=self.shape)


def _fill(template: str, **words: str) -> str:
    # "a orange square" -> "an orange square"
    return re.sub(r"\ba (?=[aeiou])", "an ", template.format(**words))


def label_prompts(combos: tuple[tuple[str, str], ...] = ALL_COMBOS) -> list[str]:
    """The label prompts ("a photo of a red circle") of `combos`, in order."""
    return [_fill(LABEL_TEMPLATE, colour=c, shape=s) for c, s in combos]


def combos_of(split: Split) -> tuple[tuple[str, str], ...]:
    """The colour-shape combinations of a split: "train" (40), "heldout" (8), "all" (48)."""
    if split == "train":
        return TRAIN_COMBOS
    if split == "heldout":
        return HELD_OUT
    if split == "all":
        return ALL_COMBOS
    raise InputError(f"unknown split {split!r}; use 'train', 'heldout' or 'all'")


def sample_spec(
    rng: np.random.Generator,
    *,
    colour: str,
    shape: str,
    size: str | None = None,
) -> ShapeSpec:
    """Draws the free parameters (size unless given, position, rotation, colour jitter,
    background) of one image of `colour` `shape` from `rng`."""
    if colour not in COLOURS:
        raise InputError(f"unknown colour {colour!r}; known: {', '.join(COLOURS)}")
    if shape not in SHAPES:
        raise InputError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    if size is None:
        size = SIZES[int(rng.integers(len(SIZES)))]
    elif size not in SIZES:
        raise InputError(f"unknown size {size!r}; known: {', '.join(SIZES)}")
    lo, hi = _RADIUS[size]
    radius = float(rng.uniform(lo, hi))
    margin = radius + 0.02
    cx, cy = (float(v) for v in rng.uniform(margin, 1.0 - margin, size=2))
    rgb = tuple(
        int(v) for v in np.clip(np.array(COLOURS[colour]) + rng.integers(-18, 19, 3), 0, 255)
    )
    # Low-saturation backgrounds between black and white shapes in luminance, so that
    # every colour, white and black included, stands out.
    grey = int(rng.integers(80, 176))
    bg_rgb = tuple(int(v) for v in np.clip(grey + rng.integers(-20, 21, 3), 0, 255))
    return ShapeSpec(
        shape=shape,
        colour=colour,
        size=size,
        background=BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))],
        cx=cx,
        cy=cy,
        radius=radius,
        rotation_deg=float(rng.uniform(-12.0, 12.0)),
        rgb=rgb,  # type: ignore[arg-type]
        bg_rgb=bg_rgb,  # type: ignore[arg-type]
        seed=int(rng.integers(2**31)),
    )


def nearest_colour(rgb: tuple[int, int, int] | np.ndarray) -> str:
    """The name of the COLOURS entry nearest to `rgb` (Euclidean in RGB)."""
    names = list(COLOURS)
    d = np.linalg.norm(
        np.array([COLOURS[n] for n in names], float) - np.asarray(rgb, float), axis=1
    )
    return names[int(np.argmin(d))]


def unnamed_colour_spec(rng: np.random.Generator, *, shape: str) -> ShapeSpec:
    """A `shape` in a random colour, captioned by shape only (SHAPE_TEMPLATES).

    Such images teach shape features that do not depend on colour. A colour whose
    nearest named colour would form a HELD_OUT combination with `shape` is redrawn, so
    that no training image approaches a held-out combination.
    """
    spec = sample_spec(rng, colour="red", shape=shape)
    while True:
        r, g, b = (int(v) for v in rng.integers(0, 256, 3))
        rgb = (r, g, b)
        if (nearest_colour(rgb), shape) not in HELD_OUT:
            break
    return replace(spec, colour=UNNAMED, rgb=rgb)


def _background(spec: ShapeSpec, side: int) -> np.ndarray:
    rng = np.random.default_rng(spec.seed)
    base = np.empty((side, side, 3), np.float32)
    base[:] = spec.bg_rgb
    if spec.background == "noisy":
        base += rng.normal(0.0, 14.0, (side, side, 3)).astype(np.float32)
    elif spec.background in ("striped", "checkered"):
        period = max(2, int(side * rng.uniform(0.08, 0.16)))
        yy, xx = np.mgrid[0:side, 0:side]
        if spec.background == "striped":
            angle = rng.uniform(0.0, math.pi)
            phase = (xx * math.cos(angle) + yy * math.sin(angle)) // period
        else:
            phase = xx // period + yy // period
        base += np.where((phase % 2 == 0)[..., None], 14.0, -14.0).astype(np.float32)
    return np.clip(base, 0, 255).astype(np.uint8)


def _polygon(spec: ShapeSpec, side: int) -> list[tuple[float, float]]:
    cx, cy, r = spec.cx * side, spec.cy * side, spec.radius * side
    rot = math.radians(spec.rotation_deg)

    def ring(
        n: int, start: float, radii: list[float], sx: float = 1.0
    ) -> list[tuple[float, float]]:
        pts = []
        for i in range(n):
            a = start + 2 * math.pi * i / n
            rr = radii[i % len(radii)]
            x, y = rr * math.cos(a) * sx, rr * math.sin(a)
            pts.append(
                (
                    cx + x * math.cos(rot) - y * math.sin(rot),
                    cy + x * math.sin(rot) + y * math.cos(rot),
                )
            )
        return pts

    if spec.shape == "square":
        return ring(4, math.pi / 4, [r * 0.95])
    if spec.shape == "triangle":
        return ring(3, -math.pi / 2, [r])
    if spec.shape == "star":
        return ring(10, -math.pi / 2, [r, r * 0.45])
    if spec.shape == "diamond":
        return ring(4, 0.0, [r], sx=0.62)
    if spec.shape == "cross":
        a, b = r * 0.95, r * 0.34
        corners = [(-b, -a), (b, -a), (b, -b), (a, -b), (a, b), (b, b), (b, a), (-b, a), (-b, b)]
        corners += [(-a, b), (-a, -b), (-b, -b)]
        return [
            (cx + x * math.cos(rot) - y * math.sin(rot), cy + x * math.sin(rot) + y * math.cos(rot))
            for x, y in corners
        ]
    raise InputError(f"unknown shape {spec.shape!r}")


def render(spec: ShapeSpec, image_size: int = 64) -> Image.Image:
    """Draws `spec` as an RGB image of image_size x image_size pixels; deterministic."""
    if image_size < 16:
        raise InputError(f"image_size must be at least 16 pixels, got {image_size}")
    image = Image.fromarray(_background(spec, image_size), "RGB")
    draw = ImageDraw.Draw(image)
    if spec.shape == "circle":
        cx, cy, r = spec.cx * image_size, spec.cy * image_size, spec.radius * image_size * 0.9
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=spec.rgb)
    else:
        draw.polygon(_polygon(spec, image_size), fill=spec.rgb)
    return image


def sample_specs(n: int, *, seed: int, split: Split = "all") -> list[ShapeSpec]:
    """`n` specs drawn from the colour-shape combinations of `split`, cycling through the
    combinations in a seeded random order so that each is equally represented."""
    if n < 0:
        raise InputError(f"n must be >= 0, got {n}")
    combos = combos_of(split)
    rng = np.random.default_rng(seed)
    specs = []
    order: list[int] = []
    for _ in range(n):
        if not order:
            order = list(rng.permutation(len(combos)))
        colour, shape = combos[order.pop()]
        specs.append(sample_spec(rng, colour=colour, shape=shape))
    return specs


def generate(
    n: int, *, seed: int, split: Split = "all", image_size: int = 64
) -> tuple[list[Image.Image], list[ShapeSpec]]:
    """`n` rendered images and their specs (see sample_specs); same seed, same pixels."""
    specs = sample_specs(n, seed=seed, split=split)
    return [render(s, image_size) for s in specs], specs


def gallery(*, seed: int, image_size: int = 64) -> tuple[list[Image.Image], list[ShapeSpec]]:
    """One image of every (size, colour, shape): 96 images, each the only match of its
    caption "a photo of a {size} {colour} {shape}" (the retrieval benchmark's gallery)."""
    rng = np.random.default_rng(seed)
    specs = [sample_spec(rng, colour=c, shape=s, size=z) for z in SIZES for c, s in ALL_COMBOS]
    return [render(s, image_size) for s in specs], specs
