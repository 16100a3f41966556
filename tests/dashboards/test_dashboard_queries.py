"""Every panel's query of every dashboard, run against a real InfluxDB 1.x loaded with the
pipeline's line protocol, with the template variables substituted as Grafana does: each
returns the numbers computed independently from the records (see ``cruise_data``).

No Grafana server can run on these machines, so Grafana's own part is reproduced here: the
server-side ``$A / $B`` math (join by timestamp, labels by subset) and the table
transformations (group by individual). Everything below that boundary is the real thing.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Callable
from statistics import mean

import pytest

from seawatch.config import load_settings
from seawatch.dashboards.catalog import build_dashboards
from seawatch.dashboards.influxql import InfluxQLClient, Series
from seawatch.dashboards.interpolate import render
from tests.dashboards import cruise_data as cd
from tests.dashboards import review_data as rd
from tests.dashboards.grafana_eval import run_panel
from tests.servers import influxdb1

pytestmark = pytest.mark.integration
DB = "seawatch"
EVIDENCE = "https://ship.example/evidence"
NARROW: cd.Selection = {
    "cruise": ("MSM120",),
    "instrument": ("uvp6-014", "flowcam-2", "scanner-02", "tank-cam-03"),
    "station": ("st/2", "st.3"),
    "taxon": ("copepod", UNKNOWN := "unknown"),
    "worker": ("seawatch@ship-a",),
}
ALL: cd.Selection = dict.fromkeys(NARROW)


@pytest.fixture(scope="module")
def influx(tmp_path_factory: pytest.TempPathFactory):
    with influxdb1(tmp_path_factory.mktemp("influx")) as server:
        client = InfluxQLClient(server.url, DB)
        client.execute(f"CREATE DATABASE {DB}")
        cruise = cd.make_cruise()
        review = rd.make_review(cruise, tmp_path_factory.mktemp("review"))
        cruise = dataclasses.replace(cruise, review=review)
        server.write(DB, cruise.lines())
        yield client, cruise


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict]:
    settings = load_settings(None, dashboards__evidence_url=EVIDENCE)
    return {d["uid"]: d for d in build_dashboards(settings)}


def by_tag(series: list[Series], tag: str) -> dict[str, dict[int, float]]:
    """{tag value: {time: value}} with nulls and fill(0) zeros left out."""
    return {s.tags[tag]: {t: v for t, v in s.values if v} for s in series}


def approx_dict(actual: dict, expected: dict) -> None:
    actual = {k: v for k, v in actual.items() if v}  # fill(0) buckets and empty series
    expected = {k: v for k, v in expected.items() if v}
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, dict):
            approx_dict(actual[key], value)
        else:
            assert actual[key] == pytest.approx(value, rel=1e-9), key


def nested(flat: dict) -> dict:
    out: dict = defaultdict(dict)
    for (outer, inner), value in flat.items():
        out[inner][outer] = value
    return dict(out)


def single_row(series: list[Series]) -> dict:
    (s,) = series
    (row,) = s.rows()
    return row


# --- expectations per panel ---------------------------------------------------------------


def objects_per_taxon(r, cruise, sel):
    flat = cd.counts_per_taxon(
        cruise, sel, with_volume=False, by=lambda f: cd.bucket(f.meta.captured_at_ns)
    )
    approx_dict(by_tag(r["A"], "taxon"), nested(flat))


def concentration_per_taxon(r, cruise, sel):
    when = lambda f: cd.bucket(f.meta.captured_at_ns)  # noqa: E731
    counts = cd.counts_per_taxon(cruise, sel, with_volume=True, by=when)
    volume = cd.volume_m3(cruise, sel, by=when)
    expected = nested({(t, taxon): n / volume[t] for (t, taxon), n in counts.items()})
    approx_dict(by_tag(r["C"], "taxon"), expected)


def top_taxa(r, cruise, sel):
    flat = cd.counts_per_taxon(cruise, sel, with_volume=False, by=lambda f: 0)
    actual = {s.tags["taxon"]: s.values[0][1] for s in r["A"]}
    approx_dict(actual, {taxon: n for (_, taxon), n in flat.items()})


def concentration_by_station(r, cruise, sel):
    counts = cd.counts_per_taxon(cruise, sel, with_volume=True, by=lambda f: f.meta.station)
    volume = cd.volume_m3(cruise, sel, by=lambda f: f.meta.station)
    actual = {(s.tags["station"], s.tags["taxon"]): s.values[0][1] for s in r["C"]}
    approx_dict(actual, {key: n / volume[key[0]] for key, n in counts.items()})


def unknown_share(r, cruise, sel):
    totals: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for f in cd.frames(cruise, sel):
        entry = totals[cd.bucket(f.meta.captured_at_ns)]
        entry[0] += sum(o.taxon == UNKNOWN for o in f.objects)
        entry[1] += len(f.objects)
    (s,) = r["A"]
    actual = dict(s.values)
    assert actual.keys() == totals.keys()  # every bucket with a frame, even an empty one
    for t, (unknown, total) in totals.items():
        assert actual[t] == pytest.approx(unknown / total if total else 0.0)


def size_spectrum(r, cruise, sel):
    row = single_row(r["A"])
    row.pop("time")
    approx_dict({k: v for k, v in row.items() if v is not None}, cd.nbss(cruise, sel))


def _otoliths(cruise, sel):
    return [
        x
        for x in cruise.otolith
        if cd.selected({"cruise": x.meta.cruise, "instrument": x.meta.instrument}, sel)
    ]


def specimens_checked(r, cruise, sel):
    flags = [int(x.otolith.anomaly) for x in _otoliths(cruise, sel)]
    row = single_row(r["A"])
    assert (row["specimens"], row["flagged"]) == (len(flags), sum(flags))
    assert row["anomaly rate"] == pytest.approx(mean(flags))


def anomaly_rate(r, cruise, sel):
    groups: dict = defaultdict(list)
    for x in _otoliths(cruise, sel):
        groups[(cd.bucket(x.meta.captured_at_ns), x.meta.instrument)].append(int(x.otolith.anomaly))
    actual = {s.tags["instrument"]: {t: v for t, v in s.values if v is not None} for s in r["A"]}
    expected = nested({key: mean(v) for key, v in groups.items()})
    assert actual.keys() == expected.keys()
    for instrument, rates in expected.items():
        assert actual[instrument] == pytest.approx(rates)


def score_distribution(r, cruise, sel):
    (s,) = r["A"]
    assert sorted(s.column("score")) == sorted(x.otolith.score for x in _otoliths(cruise, sel))


def score_against_threshold(r, cruise, sel):
    (s,) = r["A"]
    expected = {x.meta.captured_at_ns: (x.otolith.score, 0.6) for x in _otoliths(cruise, sel)}
    assert {row[0]: tuple(row[1:]) for row in s.values} == expected


def flagged_specimens(r, cruise, sel):
    (s,) = r["A"]
    actual = {(row["specimen_id"], row["instrument"], row["thumbnail"]) for row in s.rows()}
    expected = {
        (x.otolith.specimen_id, x.meta.instrument, x.otolith.thumbnail)
        for x in _otoliths(cruise, sel)
        if x.otolith.anomaly
    }
    assert actual == expected and expected
    assert all(row["heatmap"].endswith("_heatmap.jpg") for row in s.rows())


def _sightings(cruise, sel):
    return [  # every fish of a whole tank frame is a sighting of its own
        f
        for x in cruise.fish
        if cd.selected({"cruise": x.meta.cruise, "instrument": x.meta.instrument}, sel)
        for f in x.fish_sightings
    ]


def sightings_and_individuals(r, cruise, sel):
    fish = _sightings(cruise, sel)
    if not fish:
        assert r["A"] == [] and r["B"] == []
        return
    row = single_row(r["A"])
    assert (row["sightings"], row["individuals"]) == (len(fish), len({f.individual for f in fish}))
    assert single_row(r["B"])["new individuals"] == sum(f.new_individual for f in fish)


def sightings_per_individual(r, cruise, sel):
    rows = [row for s in r["A"] for row in s.rows()]
    expected = Counter(f.individual for f in _sightings(cruise, sel))
    assert Counter(row["individual"] for row in rows) == expected


def individuals(r, cruise, sel):
    rows = [row for s in r["A"] for row in s.rows()]
    grouped: dict = defaultdict(list)
    for row in rows:  # Grafana's groupBy transformation: count and mean per individual
        grouped[row["individual"]].append(row["similarity"])
    expected: dict = defaultdict(list)
    for f in _sightings(cruise, sel):
        expected[f.individual].append(f.similarity)
    assert {k: (len(v), pytest.approx(mean(v))) for k, v in grouped.items()} == {
        k: (len(v), mean(v)) for k, v in expected.items()
    }


def new_individuals(r, cruise, sel):
    expected = Counter(
        cd.bucket(x.meta.captured_at_ns)
        for x in cruise.fish
        if cd.selected({"cruise": x.meta.cruise, "instrument": x.meta.instrument}, sel)
        for f in x.fish_sightings
        if f.new_individual
    )
    actual = {t: v for s in r["A"] for t, v in s.values if v}
    assert actual == dict(expected)


def similarity_distribution(r, cruise, sel):
    fish = _sightings(cruise, sel)
    for ref, column, new in (("A", "known", False), ("B", "new", True)):
        values = sorted(v for s in r[ref] for v in s.column(column))
        assert values == sorted(f.similarity for f in fish if f.new_individual is new)


def _pipeline(field: str, reduce: Callable[[list], float]):
    def check(r, cruise, sel):
        groups: dict = defaultdict(list)
        for p in sorted(cruise.pipeline, key=lambda p: p.time_ns):
            if cd.selected({"worker": p.worker}, sel):
                groups[(cd.bucket(p.time_ns), p.worker)].append(p.fields[field])
        expected = nested({k: reduce(v) for k, v in groups.items()})
        column = r["A"][0].columns[1] if r["A"] else None
        actual = {s.tags["worker"]: {row[0]: row[1] for row in s.values} for s in r["A"]}
        assert column is not None and actual.keys() == expected.keys()
        for worker, values in expected.items():
            assert actual[worker] == pytest.approx(values)

    return check


def latency_p50_p99(r, cruise, sel):
    _pipeline("latency_p50_ms", mean)(r, cruise, sel)
    p99 = {s.tags["worker"]: {row[0]: row[2] for row in s.values} for s in r["A"]}
    groups: dict = defaultdict(list)
    for p in cruise.pipeline:
        if cd.selected({"worker": p.worker}, sel):
            groups[(cd.bucket(p.time_ns), p.worker)].append(p.fields["latency_p99_ms"])
    assert p99 == nested({k: max(v) for k, v in groups.items()})


def frame_latency_p99(r, cruise, sel):
    groups: dict = defaultdict(list)
    for f in cruise.plankton + cruise.otolith + cruise.fish:
        if cd.selected({"instrument": f.meta.instrument}, sel):
            groups[(cd.bucket(f.meta.captured_at_ns), f.meta.instrument)].append(f.latency_ms)
    expected = nested({k: cd.percentile(v, 99) for k, v in groups.items()})
    assert {s.tags["instrument"]: dict(s.values) for s in r["A"]} == expected


EXPECTED: dict[str, Callable] = {
    "Objects per taxon": objects_per_taxon,
    "Concentration per taxon (ind./m³)": concentration_per_taxon,
    "Top taxa": top_taxa,
    "Concentration by station (ind./m³)": concentration_by_station,
    "Unknown share": unknown_share,
    "Normalised biomass size spectrum": size_spectrum,
    "Specimens checked": specimens_checked,
    "Anomaly rate": anomaly_rate,
    "Anomaly score distribution": score_distribution,
    "Score against threshold": score_against_threshold,
    "Flagged specimens": flagged_specimens,
    "Sightings and individuals": sightings_and_individuals,
    "Sightings per individual": sightings_per_individual,
    "Individuals": individuals,
    "New individuals": new_individuals,
    "Similarity distribution": similarity_distribution,
    "Frames/s": _pipeline("frames_per_s", mean),
    "Objects/s": _pipeline("objects_per_s", mean),
    "Latency p50 / p99": latency_p50_p99,
    "Consumer lag": _pipeline("lag", lambda v: v[-1]),
    "Dead letters": _pipeline("errors", sum),
    "Outbox backlog": _pipeline("outbox_backlog", lambda v: v[-1]),
    "Frame latency p99 by instrument": frame_latency_p99,
    **rd.CHECKS,  # the review progress dashboard, on the review station's own points
}


def test_every_panel_has_an_expectation(dashboards):
    titles = [p["title"] for d in dashboards.values() for p in d["panels"]]
    assert sorted(titles) == sorted(EXPECTED)


@pytest.mark.parametrize("selection", [ALL, NARROW], ids=["all", "narrow"])
def test_every_panel_query_returns_the_expected_numbers(influx, dashboards, selection):
    client, cruise = influx
    checked = 0
    for model in dashboards.values():
        variables = model["templating"]["list"]
        chosen = {v["name"]: selection[v["name"]] for v in variables if v["type"] == "query"}
        constants = {v["name"]: v["query"] for v in variables if v["type"] == "constant"}
        for panel in model["panels"]:
            results = run_panel(client, panel, chosen, constants)
            # Not vacuous: every panel has data under both selections.
            assert any(s.values for series in results.values() for s in series), panel["title"]
            EXPECTED[panel["title"]](results, cruise, chosen)
            checked += 1
    assert checked == len(EXPECTED)


def test_template_variable_queries_list_the_tag_values(influx, dashboards):
    client, cruise = influx
    live = dashboards["seawatch-live-cruise"]["templating"]["list"]
    query = {v["name"]: v["query"] for v in live}
    values = lambda text: {row[1] for s in client.query(text) for row in s.values}  # noqa: E731
    assert values(query["cruise"]) == {r.meta.cruise for r in cruise.plankton}
    narrowed = render(
        query["station"], {"cruise": ["PS140"], "instrument": None}, start_ns=0, end_ns=0
    )
    assert values(narrowed) == {r.meta.station for r in cruise.plankton if r.meta.cruise == "PS140"}
    pipeline = dashboards["seawatch-pipeline"]["templating"]["list"]
    assert values(pipeline[0]["query"]) == set(cd.WORKERS)
