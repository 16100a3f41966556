"""The fitted "most likely wrong" score of a plankton model: kept in its card, computed by
its head, stored per object, fitted by ``seawatch train plankton-ranking``."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from seawatch.cli import cli
from seawatch.contracts.card import CARD_FILE, load_card, sha256_file
from seawatch.contracts.frames import Frame, FrameKind, FrameMeta, SourceRef
from seawatch.contracts.ranking import NUMERIC_FEATURES, RankingCalibration, ranking_features
from seawatch.contracts.records import UNKNOWN
from seawatch.contracts.task import PreparedFrame
from seawatch.models.plankton.head import PlanktonClassifier
from seawatch.models.plankton.ranking_fit import Stored, fit_calibration, ranking_taxa
from seawatch.models.plankton.synthetic import render_full_frame, render_roi
from seawatch.storage.local_store import LocalStore, open_readonly
from tests.storage.factories import make_record

_RANKING = ["train", "plankton-ranking"]


def _artifact(model_dir, tmp_path, ranking=..., drop=False):
    """A copy of the committed artifact whose card's ``ranking`` is replaced (or dropped:
    a card written before the field existed)."""
    copy = tmp_path / "artifact"
    shutil.copytree(model_dir, copy)
    data = json.loads((copy / CARD_FILE).read_text())
    if drop:
        data.pop("ranking", None)
    elif ranking is not ...:
        data["ranking"] = ranking
    (copy / CARD_FILE).write_text(json.dumps(data))
    return copy


def _crafted(classes: list[str]) -> RankingCalibration:
    taxa = ranking_taxa(classes)
    weights = [1.0, -0.5, 0.2, 1.5] + [0.1 * i for i in range(len(taxa))]
    return RankingCalibration(taxa=taxa, weights=tuple(weights), bias=-0.7)


def test_a_card_without_the_ranking_field_still_loads(model_dir, tmp_path):
    copy = _artifact(model_dir, tmp_path, drop=True)
    assert "ranking" not in json.loads((copy / CARD_FILE).read_text())
    card = load_card(copy)
    assert card.ranking is None and card.ranking_calibration() is None
    head = PlanktonClassifier(None, card, max_batch=8, top_k=3)  # type: ignore[arg-type]
    assert head.ranking is None


def test_the_committed_card_carries_its_fitted_ranking(model_dir):
    card = load_card(model_dir)
    calibration = card.ranking_calibration()
    assert calibration is not None
    assert calibration.taxa == (*card.class_names, UNKNOWN)
    fitted = calibration.fitted
    assert fitted["data"]["seed"] == 7_100_013  # the validation cruise, not a benchmark cruise
    assert fitted["objects"] >= 1000 and 0 < fitted["errors"] < fitted["objects"]
    assert "plankton-ranking" in fitted["command"]


def test_a_malformed_ranking_makes_the_card_invalid(model_dir, tmp_path):
    card = load_card(model_dir)
    bad = _crafted(list(card.class_names)).to_dict() | {"weights": [1.0]}
    copy = _artifact(model_dir, tmp_path, ranking=bad)
    with pytest.raises(ValidationError, match="weights"):
        load_card(copy)


def _frames(head: PlanktonClassifier) -> list[PreparedFrame]:
    """A ROI frame and a full frame, prepared by the head."""
    rng = np.random.default_rng(5)
    roi = render_roi("copepod", rng)
    full, _ = render_full_frame(rng, n_objects=6)
    frames = []
    for i, (image, kind) in enumerate(((roi, FrameKind.ROI), (full, FrameKind.FULL))):
        ok, data = cv2.imencode(".png", image)
        assert ok
        meta = FrameMeta("cam", "plankton", i, kind, "image/png")
        frame = Frame(meta, SourceRef("t", 0, i), data.tobytes(), 0)
        frames.append(PreparedFrame.of(frame, head.prepare(frame, image), 0.0))
    return frames


@pytest.mark.parametrize("calibrated", [True, False])
def test_the_head_scores_each_object_with_its_cards_calibration(model_dir, tmp_path, calibrated):
    base = load_card(model_dir)
    classes = list(base.class_names)
    calibration = _crafted(classes)
    copy = _artifact(model_dir, tmp_path, ranking=calibration.to_dict() if calibrated else None)
    head = PlanktonClassifier(None, load_card(copy), max_batch=8, top_k=3)  # type: ignore[arg-type]
    frames = _frames(head)
    n = sum(len(f.objects) for f in frames)
    assert len(frames[0].objects) == 1 and len(frames[1].objects) >= 2
    rng = np.random.default_rng(9)
    probs = rng.dirichlet(np.full(len(classes), 0.3), n).astype(np.float32)
    probs[1] = probs[0]  # the same answer for the ROI object and a segmented one
    results = head.finish(frames, probs, 1.0)
    records = [o for r in results for o in r.objects]
    if not calibrated:
        assert all(o.wrongness is None for o in records)
        return
    kinds = [False] + [True] * (n - 1)
    for record, full in zip(records, kinds, strict=True):
        expected = calibration.score(record.confidence, record.top_k, record.taxon, full)
        assert record.wrongness == pytest.approx(expected, abs=1e-12)
        assert 0.0 < record.wrongness < 1.0
    # the full-frame term (weight 1.5) ranks the segmented copy above the ROI object
    assert records[1].wrongness > records[0].wrongness
    assert records[0].taxon == records[1].taxon


def test_the_store_keeps_the_heads_score_and_falls_back_without_one(tmp_path):
    record = make_record(taxa=("copepod", "detritus"))  # confidence 0.9 each
    scored = replace(record.objects[0], wrongness=0.625)
    record = replace(record, objects=(scored, record.objects[1]))
    store = LocalStore(tmp_path / "s.db")
    store.add([record])
    store.close()
    rows = open_readonly(tmp_path / "s.db").execute(
        "SELECT taxon, wrongness FROM objects ORDER BY idx"
    )
    assert rows.fetchall() == [("copepod", 0.625), ("detritus", pytest.approx(0.1))]


def test_the_fit_finds_what_makes_errors_likely():
    """Errors planted on segmented objects and one taxon: the fit weighs both up."""
    rng = np.random.default_rng(0)
    classes = ["a", "b", "c"]
    n = 4000
    p1 = rng.uniform(0.4, 1.0, n)
    top = np.stack([p1, (1 - p1) * 0.7, (1 - p1) * 0.2], axis=1).round(4)
    taxon = rng.choice(classes, n)
    full = rng.random(n) < 0.4
    logit = -4 + 3 * (1 - p1) * 4 + 1.5 * full + 2.0 * (taxon == "c")
    errors = rng.random(n) < 1 / (1 + np.exp(-logit))
    answers = Stored(np.zeros((n, 3)), taxon, p1, top, taxon)
    cal = fit_calibration(answers, errors, full, ranking_taxa(classes))
    w = dict(zip(cal.feature_names(), cal.weights, strict=True))
    assert w["full_frame"] > 1.0
    assert w["taxon=c"] - w["taxon=a"] > 1.0 and w["taxon=c"] - w["taxon=b"] > 1.0
    without = fit_calibration(answers, errors, full, ranking_taxa(classes), use_full_frame=False)
    assert without.weights[NUMERIC_FEATURES.index("full_frame")] == 0.0
    sklearn = pytest.importorskip("sklearn.linear_model")
    x = ranking_features(p1, top, taxon, full, ranking_taxa(classes))
    reference = sklearn.LogisticRegression(C=1.0, max_iter=5000, tol=1e-10).fit(x, errors)
    np.testing.assert_allclose(cal.weights, reference.coef_[0], atol=2e-3)
    assert cal.bias == pytest.approx(reference.intercept_[0], abs=2e-3)


def test_the_command_fits_on_a_users_image_folder(model_dir, tmp_path):
    """A labelled folder (frame kinds unknown): the card gains a ranking without the
    full-frame term; the graph and the release stay the same."""
    card = load_card(model_dir)
    rng = np.random.default_rng(2)
    data = tmp_path / "labelled"
    for taxon in ("copepod", "radiolarian", "marine_snow"):
        (data / taxon).mkdir(parents=True)
        for i in range(30):
            cv2.imwrite(str(data / taxon / f"{i}.png"), render_roi(taxon, rng))
    # objects the reviewers put in a class the model does not have: always the model's errors
    (data / "ctenophore").mkdir()
    for i in range(25):
        cv2.imwrite(str(data / "ctenophore" / f"{i}.png"), render_roi("fiber", rng))
    out = tmp_path / "calibrated"
    result = CliRunner().invoke(
        cli,
        [*_RANKING, "--model", str(model_dir), "--data-dir", str(data), "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "ranking fitted on 115 objects" in result.output
    new = load_card(out)
    assert new.release == card.release
    assert sha256_file(out / "model.onnx") == sha256_file(model_dir / "model.onnx")
    calibration = new.ranking_calibration()
    assert calibration is not None
    assert calibration.weights[NUMERIC_FEATURES.index("full_frame")] == 0.0
    fitted = calibration.fitted
    assert fitted["objects"] == 115 and fitted["errors"] >= 25
    assert fitted["labels_outside_model"] == 25
    assert fitted["data"]["frame_kind"].startswith("not known")
    assert fitted["full_frame_term"].startswith("left out")
    assert load_card(model_dir).ranking == card.ranking  # the source artifact untouched


def test_the_command_refuses_too_few_errors(model_dir, tmp_path):
    rng = np.random.default_rng(4)
    data = tmp_path / "labelled"
    for taxon in ("bubble", "radiolarian"):
        (data / taxon).mkdir(parents=True)
        for i in range(5):
            cv2.imwrite(str(data / taxon / f"{i}.png"), render_roi(taxon, rng))
    result = CliRunner().invoke(
        cli,
        [*_RANKING, "--model", str(model_dir), "--data-dir", str(data), "--out", str(tmp_path)],
    )
    assert result.exit_code != 0
    assert "needs at least 20 errors" in result.output


def test_the_command_reads_frame_kinds_from_an_ecotaxa_column(model_dir, tmp_path):
    """An EcoTaxa TSV with acq_frame_kind: the full-frame term is fitted; rows not
    validated are left out with --validated-only."""
    rng = np.random.default_rng(6)
    folder = tmp_path / "export"
    folder.mkdir()
    header = ["img_file_name", "object_annotation_category", "object_annotation_status"]
    rows = [[*header, "acq_frame_kind"], ["[t]", "[t]", "[t]", "[t]"]]
    for i in range(120):
        drawn = ("copepod", "detritus", "fiber")[i % 3]
        label = "chaetognath" if i % 4 == 0 else drawn  # a quarter the model must get wrong
        cv2.imwrite(str(folder / f"{i}.png"), render_roi(drawn, rng))
        status = "predicted" if i % 10 == 9 else "validated"
        rows.append([f"{i}.png", label, status, "full" if i % 2 else "roi"])
    tsv = folder / "ecotaxa_seawatch.tsv"
    tsv.write_text("\n".join("\t".join(r) for r in rows) + "\n")
    out = tmp_path / "calibrated"
    args = [*_RANKING, "--model", str(model_dir), "--ecotaxa", str(tsv), "--validated-only"]
    result = CliRunner().invoke(cli, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    fitted = load_card(out).ranking["fitted"]
    assert fitted["objects"] == 108  # 12 rows not validated
    assert fitted["data"]["frame_kind"] == "acq_frame_kind column"
    assert fitted["full_frame_term"] == "fitted"
    assert set(fitted["by_source"]) == {"roi", "segmented"}
    assert sum(s["objects"] for s in fitted["by_source"].values()) == 108
