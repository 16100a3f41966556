"""The otolith networks: teacher and student feature extractors, the MKD losses, the detector.

Multiresolution knowledge distillation (MKD, Salehi et al., CVPR 2021) with asymmetric
inputs: a frozen *teacher* sees the colour image, a *student* sees its grayscale version and
learns, on normal otoliths only, to reproduce the teacher's features at three resolutions
(1/2, 1/4 and 1/8 of the input side). Where the student cannot (a defect it never learnt, a
colour a gray image does not show), the discrepancy is high: that is the anomaly map.

:class:`OtolithMKD` is what is exported: RGB 0..255 in, grayscale conversion and
normalisation inside, ``score`` (N,) and ``heatmap`` (N x h x w) out.
"""

from __future__ import annotations

import itertools
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

STAGES = 3
DEFAULT_WIDTHS: tuple[int, int, int, int] = (16, 32, 64, 96)
GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # R, G, B: as cv2.COLOR_RGB2GRAY
#: Test-time views the map can average: the image as is; turned by 0 and 180 degrees; by every
#: 90 degrees; or those four turns and their mirror images (the eight symmetries of a square).
VIEWS: tuple[int, ...] = (1, 2, 4, 8)
StudentInput = Literal["gray", "rgb"]


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class FeatureNet(nn.Module):
    """A plain CNN: a stem and three stages of ``depth`` 3x3 convolutions, the first with
    stride 2 (a deeper teacher than its student is what keeps the student from copying it
    everywhere).

    ``forward`` returns the three stage outputs (1/2, 1/4, 1/8 of the stem's output side; the
    stem keeps the input side, or halves it with ``stem_stride`` 2 so that a full-resolution
    input costs the stages no more than a half-resolution one).
    """

    def __init__(
        self,
        in_channels: int,
        widths: tuple[int, ...] = DEFAULT_WIDTHS,
        stem_stride: int = 1,
        depth: int = 2,
    ) -> None:
        super().__init__()
        if depth < 1:
            msg = f"depth (convolutions per stage) must be at least 1, got {depth}"
            raise ValueError(msg)
        if len(widths) != STAGES + 1:
            msg = f"widths needs {STAGES + 1} values (stem + {STAGES} stages), got {widths}"
            raise ValueError(msg)
        self.stem = _conv_bn(in_channels, widths[0], stem_stride)
        self.stem_stride = stem_stride
        self.stages = nn.ModuleList(
            nn.Sequential(
                _conv_bn(c_in, c_out, 2), *(_conv_bn(c_out, c_out) for _ in range(depth - 1))
            )
            for c_in, c_out in itertools.pairwise(widths)
        )
        self.widths = tuple(widths)
        self.depth = depth
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class Student(nn.Module):
    """A :class:`FeatureNet` with a 1x1 projection per stage onto the teacher's features."""

    def __init__(
        self, in_channels: int, widths: tuple[int, ...] = DEFAULT_WIDTHS, stem_stride: int = 1
    ) -> None:
        super().__init__()
        self.body = FeatureNet(in_channels, widths, stem_stride)
        self.heads = nn.ModuleList(nn.Conv2d(c, c, 1) for c in widths[1:])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [head(f) for head, f in zip(self.heads, self.body(x), strict=True)]


def value_map(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    """Per-position value discrepancy: mean squared difference over channels (N x H x W)."""
    return (teacher - student).pow(2).mean(1)


def direction_map(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    """Per-position direction discrepancy: 1 - cosine similarity over channels (N x H x W)."""
    return 1.0 - F.cosine_similarity(teacher, student, dim=1, eps=1e-6)


def discrepancy_maps(
    teacher: list[torch.Tensor], student: list[torch.Tensor], direction_weight: float
) -> list[torch.Tensor]:
    """Value + ``direction_weight`` x direction discrepancy per stage (each N x H_k x W_k)."""
    return [
        value_map(t, s) + direction_weight * direction_map(t, s)
        for t, s in zip(teacher, student, strict=True)
    ]


def mkd_loss(
    teacher: list[torch.Tensor], student: list[torch.Tensor], direction_weight: float
) -> torch.Tensor:
    """The MKD training loss: value + weighted direction loss, averaged, summed over stages."""
    return sum(m.mean() for m in discrepancy_maps(teacher, student, direction_weight))


class OtolithMKD(nn.Module):
    """The exported detector: frozen teacher on RGB, student on gray (or RGB), anomaly map.

    Input: float32 N x 3 x S x S RGB, 0..255. Output: ``score`` (N,) and ``heatmap``
    (N x S/2s x S/2s, s the stem stride): the per-stage discrepancy divided by its mean on
    normal validation images, upsampled, averaged over stages and smoothed (and averaged over
    ``views`` turns and mirror images of the image); the score is its maximum (``top_k`` = 1)
    or the mean of its ``top_k`` largest values.
    """

    def __init__(
        self,
        teacher: FeatureNet,
        student: Student,
        *,
        student_input: StudentInput,
        rgb_mean: tuple[float, float, float],
        rgb_std: tuple[float, float, float],
        direction_weight: float = 1.0,
        smooth_sigma: float = 1.0,
    ) -> None:
        super().__init__()
        if student_input not in ("gray", "rgb"):
            msg = f"student_input must be 'gray' or 'rgb', got {student_input!r}"
            raise ValueError(msg)
        self.teacher, self.student = teacher, student
        self.student_input: StudentInput = student_input
        self.direction_weight = direction_weight
        self.top_k = 1
        self._views = 1
        mean, std = torch.tensor(rgb_mean), torch.tensor(rgb_std)
        gray = torch.tensor(GRAY_WEIGHTS)
        self.register_buffer("rgb_mean", mean.view(1, 3, 1, 1))
        self.register_buffer("rgb_std", std.view(1, 3, 1, 1))
        self.register_buffer("gray_weights", gray.view(1, 3, 1, 1))
        self.register_buffer("gray_mean", (gray * mean).sum().view(1, 1, 1, 1))
        self.register_buffer("gray_std", (gray * std).sum().view(1, 1, 1, 1))
        for k, c in enumerate(teacher.widths[1:]):
            self.register_buffer(f"feature_scale{k}", torch.ones(1, c, 1, 1))
        self.register_buffer("stage_norm", torch.ones(STAGES))
        self.register_buffer("smooth", _gaussian_kernel(smooth_sigma))

    @property
    def views(self) -> int:
        """Test-time views averaged in the map: 1, 2 (turns of 0 and 180 degrees), 4 (every
        90) or 8 (every 90 and each one mirrored)."""
        return self._views

    @views.setter
    def views(self, n: int) -> None:
        check_views(n)
        self._views = n

    def teacher_features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Teacher features of RGB 0..255 images, each channel scaled to unit std on normals."""
        x = (image * (1.0 / 255.0) - self.rgb_mean) / self.rgb_std
        scales = [getattr(self, f"feature_scale{k}") for k in range(STAGES)]
        return [f * s for f, s in zip(self.teacher(x), scales, strict=True)]

    def student_features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Student features of RGB 0..255 images (converted to gray inside when asked to)."""
        if self.student_input == "gray":
            gray = (image * self.gray_weights).sum(1, keepdim=True)
            x = (gray * (1.0 / 255.0) - self.gray_mean) / self.gray_std
        else:
            x = (image * (1.0 / 255.0) - self.rgb_mean) / self.rgb_std
        return self.student(x)

    def heatmap(self, image: torch.Tensor) -> torch.Tensor:
        """The anomaly map (N x S/2s x S/2s), in units of the normal mean per stage.

        With ``views`` > 1 it is the mean of the maps of the image turned (by multiples of 180
        or 90 degrees) and, with 8, mirrored too, each map turned back: a defect is found in
        every view, a student's chance miss on normal structure in only some. One batch of
        N x views.
        """
        if self.views == 1:
            return self._heatmap(image)
        symmetries = view_symmetries(self.views)
        maps = self._heatmap(torch.cat([transform(image, k, m) for k, m in symmetries]))
        parts = maps.chunk(self.views)
        total = sum(untransform(p, k, m) for (k, m), p in zip(symmetries, parts, strict=True))
        return total / self.views

    def _heatmap(self, image: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            teacher = self.teacher_features(image)
        maps = discrepancy_maps(teacher, self.student_features(image), self.direction_weight)
        size = maps[0].shape[-2:]
        total = maps[0] / self.stage_norm[0]
        for k in range(1, STAGES):
            up = F.interpolate(maps[k][:, None], size=size, mode="bilinear", align_corners=False)
            total = total + up[:, 0] / self.stage_norm[k]
        pad = self.smooth.shape[-1] // 2
        padded = F.pad(total[:, None] / STAGES, (pad, pad, pad, pad), mode="replicate")
        return F.conv2d(padded, self.smooth)[:, 0]

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        heat = self.heatmap(image)
        return reduce_scores(heat, self.top_k), heat


def check_views(n: int) -> None:
    """Raise a ValueError that names the allowed values unless ``n`` is in VIEWS."""
    if n not in VIEWS:
        msg = (
            f"views must be one of {', '.join(map(str, VIEWS))} (test-time turns of the image "
            f"by 180 or 90 degrees, 8 with their mirror images, averaged in the map), got {n!r}"
        )
        raise ValueError(msg)


def view_symmetries(views: int) -> list[tuple[int, bool]]:
    """The (quarter turns, mirrored) pairs of ``views`` test-time views."""
    check_views(views)
    turns = range(0, 4, 4 // min(views, 4))
    return [(k, mirrored) for mirrored in (False, True)[: 1 + (views == 8)] for k in turns]


def transform(x: torch.Tensor, k: int, mirrored: bool) -> torch.Tensor:
    """``x`` mirrored left-right (when asked), then turned by ``k`` quarter turns."""
    return turn(x.flip(-1) if mirrored else x, k)


def untransform(x: torch.Tensor, k: int, mirrored: bool) -> torch.Tensor:
    """The inverse of :func:`transform`: turned back, then mirrored back."""
    x = turn(x, -k)
    return x.flip(-1) if mirrored else x


def turn(x: torch.Tensor, k: int) -> torch.Tensor:
    """``torch.rot90(x, k)`` over the last two (square) axes, from flips and a transpose,
    which ONNX can export (``rot90`` it cannot)."""
    k %= 4
    if k == 1:
        return x.flip(-1).transpose(-2, -1)
    if k == 2:
        return x.flip(-2).flip(-1)
    if k == 3:
        return x.transpose(-2, -1).flip(-1)
    return x


def reduce_scores(heatmap: torch.Tensor, top_k: int) -> torch.Tensor:
    """Image scores from heat maps: the maximum (``top_k`` 1) or the mean of the top k."""
    flat = heatmap.flatten(1)
    if top_k == 1:
        return flat.max(1).values
    return flat.topk(top_k, dim=1).values.mean(1)


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    """A normalised 2-D Gaussian (1 x 1 x k x k); the identity when ``sigma`` is 0."""
    if sigma <= 0:
        return torch.ones(1, 1, 1, 1)
    radius = max(1, round(2.5 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = torch.outer(g, g)
    return (kernel / kernel.sum())[None, None]


def count_parameters(module: nn.Module) -> int:
    """Number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())


_VIEW_NAMES = {
    2: "2 turns of the image (0 and 180 degrees)",
    4: "4 turns of the image (every 90 degrees)",
    8: "8 views of the image (4 turns, each also mirrored)",
}


def describe(model: OtolithMKD) -> str:
    """One line naming the architecture, for the model card."""
    widths = list(model.teacher.widths)
    stride = model.teacher.stem_stride
    scales = ", ".join(f"1/{2**k * stride}" for k in range(1, STAGES + 1))
    depths = f"{model.teacher.depth} (teacher) and {model.student.body.depth} (student)"
    return (
        f"MKD (asymmetric: teacher RGB, student {model.student_input}): teacher and student "
        f"CNNs, 3x3 stem (stride {stride}) + 3 stages of {depths} 3x3 convs (stride 2 first, "
        f"BatchNorm, ReLU), widths {widths}, features distilled at {scales} of the input; "
        "student 1x1 projection "
        f"heads; teacher {count_parameters(model.teacher) / 1e3:.0f} k and student "
        f"{count_parameters(model.student) / 1e3:.0f} k parameters; value + "
        f"{model.direction_weight:g} x direction (1 - cosine) discrepancy per position, each "
        f"stage divided by its normal mean, upsampled to the finest, averaged, Gaussian-smoothed"
        + (f", averaged over {_VIEW_NAMES[model.views]}" if model.views > 1 else "")
        + f"; score = {'max' if model.top_k == 1 else f'mean of top {model.top_k}'} of the map"
    )


__all__ = [
    "DEFAULT_WIDTHS",
    "GRAY_WEIGHTS",
    "STAGES",
    "VIEWS",
    "FeatureNet",
    "OtolithMKD",
    "Student",
    "check_views",
    "count_parameters",
    "describe",
    "direction_map",
    "discrepancy_maps",
    "mkd_loss",
    "reduce_scores",
    "transform",
    "turn",
    "untransform",
    "value_map",
    "view_symmetries",
]
