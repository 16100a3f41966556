"""Taxa the committed classifier never learned, drawn by the *first* instrument's optics.

The out-of-distribution score (:mod:`seawatch.contracts.ood`) is checked on objects unlike
anything in training. Two groups, never mixed:

- :data:`CALIBRATION_TAXA` (foraminifera, tintinnid, pteropod, fish egg): used while
  developing and fitting the score (choice of method and of its settings, the held-out
  check printed by ``seawatch train plankton-ood``);
- :data:`TEST_TAXA` (dinoflagellate, ciliate, centric diatom, medusa, polychaete larva):
  looked at only by ``benchmarks/ood.py``. Dinoflagellates, ciliates and centric diatoms are
  the taxa of issue 24's real micrographs; ciliate and centric diatom reuse the pens of the
  shifted instrument (:mod:`.shifted`), drawn here with the first instrument's optics.

Each is rendered by :func:`seawatch.models.plankton.synthetic.render_roi` (same background,
defocus, breakage, noise and dark-field share as the training taxa), so only the organism
is new. numpy + OpenCV only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from seawatch.contracts.preprocess import prepare_roi
from seawatch.models.plankton._taxa import Pen, _curve, _strip
from seawatch.models.plankton.shifted import _centric_diatom, _ciliate
from seawatch.models.plankton.synthetic import render_roi


def _foraminifera(rng: np.random.Generator) -> Pen:
    """Chambers of growing size along a logarithmic spiral, the last ones densest."""
    r0 = rng.uniform(4, 9)
    n = int(rng.integers(6, 12))
    growth = rng.uniform(1.12, 1.25)
    reach = r0 * growth**n * 2.2
    pen = Pen(reach, rng)
    a, d = 0.0, r0 * 0.8
    for k in range(n):
        r = r0 * growth**k
        d += r * 0.75
        a += rng.uniform(0.55, 0.8)
        centre = (d * math.cos(a) * 0.6, d * math.sin(a) * 0.6)
        pen.ellipse(centre, (r, r * rng.uniform(0.85, 1.0)), rng.uniform(110, 170) + 6 * k)
        pen.ellipse(centre, (r, r), 230, thickness=1)
    pen.mottle(rng, 0.7)
    return pen


def _tintinnid(rng: np.random.Generator) -> Pen:
    """A vase-shaped lorica, open at the mouth, with growth rings and the cell inside."""
    length = rng.uniform(40, 110)
    width = length * rng.uniform(0.3, 0.5)
    pen = Pen(length * 0.6, rng)
    xs = np.linspace(-length / 2, length / 2, 20)
    t = (xs + length / 2) / length
    half = width / 2 * (0.35 + 0.65 * np.sqrt(np.clip(t, 0, 1)))
    for side in (-1, 1):
        pen.line(np.stack([xs, side * half], 1), rng.uniform(170, 230), thickness=2)
    pen.line(np.array([(xs[0], -half[0]), (xs[0], half[0])]), 200, thickness=2)  # closed end
    for x in xs[3::3]:  # growth rings
        h = float(np.interp(x, xs, half))
        pen.line(np.array([(x, -h), (x, h)]), rng.uniform(60, 100))
    pen.ellipse((-length * 0.1, 0), (length * 0.25, width * 0.25), rng.uniform(90, 140))
    return pen


def _pteropod(rng: np.random.Generator) -> Pen:
    """A coiled shell (a thick spiral) with two faint swimming wings."""
    r = rng.uniform(15, 45)
    pen = Pen(r * 2.0, rng)
    turns = rng.uniform(1.5, 3.0)
    th = np.linspace(0, turns * 2 * math.pi, 60)
    rad = r * (0.15 + 0.85 * th / th[-1])
    pen.line(np.stack([rad * np.cos(th), rad * np.sin(th)], 1), rng.uniform(170, 230), 3)
    pen.ellipse((0, 0), (r, r), rng.uniform(50, 90))
    for side in (-1, 1):  # wings
        pen.ellipse(
            (r * 1.2, side * r * 0.6),
            (r * 0.9, r * 0.35),
            rng.uniform(35, 65),
            angle=side * rng.uniform(20, 50),
        )
    return pen


def _fish_egg(rng: np.random.Generator) -> Pen:
    """A large clear sphere with a thin chorion, an oil droplet and a curled embryo."""
    r = rng.uniform(30, 90)
    pen = Pen(r * 1.1, rng)
    pen.ellipse((0, 0), (r, r), rng.uniform(15, 35))
    pen.ellipse((0, 0), (r, r), rng.uniform(150, 210), thickness=int(rng.integers(1, 3)))
    th = np.linspace(rng.uniform(0, 1), rng.uniform(3.5, 5.5), 24)
    body = r * 0.6
    xs, ys = body * np.cos(th), body * np.sin(th)
    pen.poly(_strip(xs, ys, np.linspace(r * 0.12, r * 0.04, th.size)), rng.uniform(80, 130))
    pen.ellipse((xs[0], ys[0]), (r * 0.08, r * 0.08), 230)  # eye
    a = rng.uniform(0, 2 * math.pi)
    pen.ellipse((r * 0.3 * math.cos(a), r * 0.3 * math.sin(a)), (r * 0.12,) * 2, 120)  # oil
    return pen


def _dinoflagellate(rng: np.random.Generator) -> Pen:
    """Ceratium-like: a compact theca with one long apical horn and two antapical horns."""
    body = rng.uniform(14, 30)
    horn = body * rng.uniform(2.0, 4.0)
    pen = Pen(body + horn, rng)
    pen.ellipse((0, 0), (body, body * 0.8), rng.uniform(130, 190))
    pen.line(_curve((-body * 0.9, 0), (body * 0.9, 0), 0.08, 10), 230, thickness=2)  # girdle
    pen.poly(
        np.array([(-body * 0.25, -body * 0.6), (0, -body - horn), (body * 0.25, -body * 0.6)]),
        rng.uniform(140, 200),
    )
    for side in (-1, 1):
        tip = (side * body * rng.uniform(0.8, 1.6), body + horn * rng.uniform(0.4, 0.8))
        pen.line(_curve((side * body * 0.5, body * 0.5), tip, side * 0.15, 10), 180, 3)
    pen.mottle(rng, 0.75)
    return pen


def _medusa(rng: np.random.Generator) -> Pen:
    """A small jellyfish: a translucent bell, a manubrium and trailing tentacles."""
    r = rng.uniform(20, 60)
    pen = Pen(r * 2.2, rng)
    th = np.linspace(0, math.pi, 24)
    bell = np.stack([r * np.cos(th), -r * 0.8 * np.sin(th)], 1)
    pen.poly(bell, rng.uniform(40, 80))
    pen.line(bell, rng.uniform(140, 190), thickness=2)
    pen.line(np.array([(0, 0), (0, r * 0.5)]), 160, thickness=max(2, int(r * 0.1)))
    for x in np.linspace(-r * 0.95, r * 0.95, int(rng.integers(4, 10))):
        tip = (x * rng.uniform(0.8, 1.4), r * rng.uniform(0.8, 1.8))
        pen.line(_curve((x, 0), tip, rng.uniform(-0.3, 0.3), 12), rng.uniform(110, 170))
    return pen


def _polychaete(rng: np.random.Generator) -> Pen:
    """A segmented larva with bundles of chaetae (bristles) on every segment."""
    length = rng.uniform(60, 180)
    pen = Pen(length * 0.6, rng)
    n = int(rng.integers(5, 12))
    xs = np.linspace(-length / 2, length / 2, n)
    width = length * rng.uniform(0.06, 0.1)
    ys = rng.uniform(-0.1, 0.1) * length * np.sin(np.linspace(0, math.pi, n))
    for x, y in zip(xs, ys, strict=True):
        pen.ellipse((x, y), (length / n * 0.55, width), rng.uniform(120, 180))
        for side in (-1, 1):
            for k in range(3):
                reach = width + length * rng.uniform(0.08, 0.18)
                tip = (x + rng.uniform(-4, 4), y + side * reach)
                pen.line(np.array([(x, y + side * width * 0.8), tip]), 150 - 15 * k)
    return pen


DRAW: dict[str, Callable[[np.random.Generator], Pen]] = {
    "foraminifera": _foraminifera,
    "tintinnid": _tintinnid,
    "pteropod": _pteropod,
    "fish_egg": _fish_egg,
    "dinoflagellate": _dinoflagellate,
    "ciliate": _ciliate,
    "centric_diatom": _centric_diatom,
    "medusa": _medusa,
    "polychaete_larva": _polychaete,
}
CALIBRATION_TAXA: tuple[str, ...] = ("foraminifera", "tintinnid", "pteropod", "fish_egg")
TEST_TAXA: tuple[str, ...] = (
    "dinoflagellate",
    "ciliate",
    "centric_diatom",
    "medusa",
    "polychaete_larva",
)
DARK_FIELD_SHARE = 0.2  # as the training taxa's ROIs (make_dataset's default)


def render_novel(taxon: str, rng: np.random.Generator, *, dark_field: bool = False) -> np.ndarray:
    """One ROI (2-D uint8) of a novel ``taxon`` through the first instrument's optics."""
    if taxon not in DRAW:
        msg = f"unknown novel taxon {taxon!r}; expected one of {', '.join(DRAW)}"
        raise ValueError(msg)
    return render_roi(taxon, rng, dark_field=dark_field, draw=DRAW[taxon])


def novel_set(
    n_per_class: int, seed: int, *, taxa: Sequence[str], size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Prepared crops (uint8 N x size x size) and labels (indices into ``taxa``), shuffled."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(taxa), dtype=np.int64), n_per_class)
    labels = labels[rng.permutation(labels.size)]
    images = np.empty((labels.size, size, size), np.uint8)
    for i, label in enumerate(labels):
        dark = bool(rng.random() < DARK_FIELD_SHARE)
        images[i] = prepare_roi(render_novel(taxa[label], rng, dark_field=dark), size)
    return images, labels


__all__ = ["CALIBRATION_TAXA", "DRAW", "TEST_TAXA", "novel_set", "render_novel"]
