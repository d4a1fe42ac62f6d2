"""Ids are text hashes, so a sampling run survives a grown or reordered mixture: only new problems
are sampled, and traces are set aside only when the teacher's settings change. The teacher is the
stand-in R1 endpoint (no remote API here)."""

from hub_layouts import numina, numina_row
from standin import StandInR1

from distill import pipeline
from distill.recipe import load_recipe
from distill.records import Trace, read_records

RECIPE = """name: grow
student: {{model: m}}
teacher: {{backend: openai, model: stand-in-r1, base_urls: ["{url}"]}}
problems:
  sources:
{sources}
  decontaminate: []
sampling: {{n: 2, max_tokens: 64, max_concurrent: 4, timeout_s: 30}}
eval: {{problems: e.jsonl}}
"""


def rows(lo, hi):
    return [numina_row(f"Lena has {k} beads and finds 7 more. How many beads now?", str(k + 7)) for k in range(lo, hi)]


def run(tmp_path, url, sources, overrides=()):
    (tmp_path / "grow.yaml").write_text(RECIPE.format(url=url, sources=sources))
    return pipeline.run(load_recipe(tmp_path / "grow.yaml", list(overrides)), to_stage="sample")


def traces(tmp_path):
    return [t.key for t in read_records(tmp_path / "data/runs/grow/traces.jsonl", Trace)]


def test_a_grown_and_reordered_mixture_resumes_by_id(tmp_path):
    a, b = numina(tmp_path / "a", rows(10, 16)), numina(tmp_path / "b", rows(20, 24))
    answers = {r["problem"]: r["answer"] for r in rows(10, 30)}
    src_a = f"    - {{name: a, dataset: {a}, layout: numina, limit: 4}}"
    src_b = f"    - {{name: b, dataset: {b}, layout: numina}}"
    with StandInR1(answers) as server:
        run(tmp_path, server.url, src_a)
        first = traces(tmp_path)
        assert len(first) == 8 and server.requests["ok"] == 8
        # A second source first, and a higher limit: 2 more from `a`, 4 from `b`, nothing redone.
        ledger = run(tmp_path, server.url, src_b + "\n" + src_a.replace("limit: 4", "limit: 6"))
        assert traces(tmp_path)[:8] == first and len(traces(tmp_path)) == 20
        assert server.requests["ok"] == 20 and ledger["sample"]["sampled"] == 12
        assert not list((tmp_path / "data/runs/grow").glob("traces.*.jsonl"))  # nothing set aside
        # Other sampling settings are other traces: the old ones are kept aside, never mixed in.
        run(tmp_path, server.url, src_b + "\n" + src_a, ["sampling.temperature=0.9"])
        assert len(list((tmp_path / "data/runs/grow").glob("traces.*.jsonl"))) == 1
        assert server.requests["ok"] == 20 + 16
