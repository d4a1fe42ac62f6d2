"""Incremental sampling through the pipeline (problems -> sample -> filter) against the stand-in R1:
only what changes a trace invalidates old traces; raising n or the problem set pays only for what
is missing; a refused sample is recorded once and the run goes on; a model the endpoint does not
serve stops the run before any sample is paid for."""

import json

import pytest
from conftest import MICRO_RECIPE
from standin import StandInR1

from distill import pipeline
from distill.errors import DistillError
from distill.problems.bundled import generate_bundled
from distill.recipe import load_recipe
from distill.records import BadLine, Trace, read_records, write_jsonl
from distill.sample import sampler as sample
from distill.sample.provenance import settings_key

RUN = "data/runs/micro"


@pytest.fixture
def micro(tmp_path):
    """Write the problems and return (answers, recipe loader for a stand-in URL)."""
    problems = generate_bundled(per_kind=4)
    write_jsonl(tmp_path / "p.jsonl", problems)

    def load(urls, *overrides):
        urls = [urls] if isinstance(urls, str) else urls
        text = MICRO_RECIPE.format(student="x", url=urls[0], problems=tmp_path / "p.jsonl")
        (tmp_path / "micro.yaml").write_text(text.replace(f"base_urls: [{urls[0]}]", f"base_urls: {json.dumps(urls)}"))
        return load_recipe(tmp_path / "micro.yaml", list(overrides))

    return {p.problem: p.answer for p in problems}, load


def _traces(tmp_path) -> list[Trace]:
    recs = list(read_records(tmp_path / RUN / "traces.jsonl", Trace))
    assert not [r for r in recs if isinstance(r, BadLine)]
    return recs


def _report(tmp_path) -> dict:
    return json.loads((tmp_path / RUN / "filter/report.json").read_text())


def test_only_what_changes_a_trace_invalidates_old_traces(tmp_path, micro):
    answers, load = micro
    with StandInR1(answers) as a, StandInR1(answers) as b:
        pipeline.run(load(a.url), to_stage="filter")
        assert a.posts == 8 and len(_traces(tmp_path)) == 8  # 4 problems x n=2

        # n 2 -> 4, and every setting of how traces are fetched changes too: only the 8 new samples.
        recipe = load([a.url, b.url], "sampling.n=4", "sampling.max_concurrent=5", "sampling.timeout_s=99",
                      "sampling.max_retries=7", "sampling.idle_timeout_s=33", "teacher.price_per_million_output=2.19")
        pipeline.run(recipe, to_stage="filter")
        assert a.posts + b.posts == 16 and b.posts > 0
        traces = _traces(tmp_path)
        assert sorted(t.sample_index for t in traces if t.problem_id == traces[0].problem_id) == [0, 1, 2, 3]
        assert {t.provenance.settings for t in traces} == {settings_key(recipe)}
        assert traces[0].provenance.params == {"temperature": 0.6, "top_p": 0.95, "max_tokens": 64, "seed": 0,
                                               "extra_body": {}}
        assert not list((tmp_path / RUN).glob("traces.*.jsonl"))  # nothing was moved aside
        assert _report(tmp_path)["input"] == 16

        # n 4 -> 1: nothing is asked; the other samples stay in the file, unused by the filter.
        pipeline.run(load(a.url, "sampling.n=1"), to_stage="filter")
        assert a.posts + b.posts == 16 and len(_traces(tmp_path)) == 16
        assert _report(tmp_path)["input"] == 4 and _report(tmp_path)["skipped"] == {"not_this_run": 12}

        # Two more problems at n=1: two samples.
        pipeline.run(load(a.url, "sampling.n=1", "problems.limit=6"), to_stage="filter")
        assert a.posts + b.posts == 18 and _report(tmp_path)["input"] == 6

        # Another temperature makes other traces: the old file goes aside, all is asked anew...
        hot = load(a.url, "sampling.n=1", "problems.limit=6", "sampling.temperature=0.9")
        pipeline.run(hot, to_stage="filter")
        old_key = settings_key(recipe)
        assert (tmp_path / RUN / f"traces.{old_key}.jsonl").exists() and a.posts + b.posts == 24
        assert {t.provenance.settings for t in _traces(tmp_path)} == {settings_key(hot)}
        # ...and going back brings the old traces back without asking for them again.
        pipeline.run(load(a.url, "sampling.n=1", "problems.limit=6"), to_stage="filter")
        assert a.posts + b.posts == 24 and len(_traces(tmp_path)) == 18
        assert (tmp_path / RUN / f"traces.{settings_key(hot)}.jsonl").exists()


def test_a_refused_sample_is_recorded_once_and_the_run_goes_on(tmp_path, micro):
    answers, load = micro
    with StandInR1(answers, faults=["400"]) as server:
        recipe = load(server.url, "sampling.max_failed_share=0.2", "sampling.max_concurrent=1")
        ledger = pipeline.run(recipe, to_stage="filter")
        assert ledger["filter"]["done"] and server.posts == 8  # the refusal was not retried
        summary = json.loads((tmp_path / RUN / "sample_summary.json").read_text())
        assert summary["failures_by_kind"] == {"client_error": 1} and summary["failed_share"] == 1 / 8
        (failure,) = [json.loads(x) for x in (tmp_path / RUN / "sample_failures.jsonl").read_text().splitlines()]
        assert failure["kind"] == "client_error" and "content policy" in failure["message"]
        assert len(_traces(tmp_path)) == 7 and _report(tmp_path)["input"] == 7

        # A rerun does not ask for it again (it would be refused again); the share still counts it.
        again = sample.run(recipe, _problems(tmp_path), tmp_path / RUN / "traces.jsonl",
                           show_progress=False)
        assert server.posts == 8 and again["failed_for_good_before"] == 1 and again["failed_share"] == 1 / 8

        # Above the allowed share the pipeline stops after sampling, with what to do.
        strict = load(server.url, "sampling.max_failed_share=0.1", "sampling.max_concurrent=1")
        with pytest.raises(DistillError, match=r"1 samples failed \(12.5% of 8, above sampling.max_failed_share"):
            pipeline.run(strict, from_stage="sample", to_stage="filter")


def _problems(tmp_path):
    from distill.records import load_problems

    return load_problems(tmp_path / RUN / "problems.jsonl")


def test_a_prompt_over_the_context_is_a_failure_for_good(tmp_path, micro):
    answers, load = micro
    with StandInR1(answers, faults=["400ctx", "500"]) as server:
        recipe = load(server.url, "sampling.max_concurrent=1", "sampling.max_failed_share=0.5")
        summary = sample.run(recipe, _problems_list(tmp_path), tmp_path / "t.jsonl", show_progress=False)
    # The 500 is retried and lands; the context overflow is not retried.
    assert summary["failures_by_kind"] == {"context_overflow": 1} and summary["sampled"] == 7
    assert summary["errors_by_kind"] == {"context_overflow": 1, "server_error": 1}


def _problems_list(tmp_path):
    from distill.records import load_problems

    return load_problems(tmp_path / "p.jsonl")[:4]


def test_a_model_the_endpoint_does_not_serve_stops_before_any_sample(tmp_path, micro):
    answers, load = micro
    with StandInR1(answers, models=["deepseek-r1", "qwq-32b"]) as server:
        with pytest.raises(DistillError) as err:
            pipeline.run(load(server.url), to_stage="sample")
        assert server.posts == 0
    message = str(err.value)
    assert "`stand-in-r1` is not served" in message and "deepseek-r1, qwq-32b" in message
    assert "teacher.model" in message
    traces = tmp_path / RUN / "traces.jsonl"
    assert not traces.exists() or traces.stat().st_size == 0


def test_traces_of_other_settings_are_never_mixed_unseen(tmp_path, micro):
    answers, load = micro
    out = tmp_path / "traces.jsonl"
    with StandInR1(answers) as server:
        sample.run(load(server.url), _problems_list(tmp_path), out, show_progress=False)
        with pytest.raises(DistillError, match="8 traces made under other teacher or sampling settings"):
            sample.run(load(server.url, "teacher.few_shot=2"), _problems_list(tmp_path), out, show_progress=False)
        assert server.posts == 8
        # Traces without a recorded provenance (an old file, a hand-made one) count as other settings too.
        rows = [json.loads(x) for x in out.read_text().splitlines()]
        for r in rows[:2]:
            del r["provenance"]
        write_jsonl(out, rows)
        with pytest.raises(DistillError, match="2 traces made under other"):
            sample.run(load(server.url), _problems_list(tmp_path), out, show_progress=False)
