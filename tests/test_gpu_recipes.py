"""Every GPU recipe distills for real: a hub mixture of math and code (never the bundled arithmetic),
decontaminated against the benchmarks it reports, 32k thinking the student can hold, lengths that
agree from sampling to training, the published evaluation protocol, and a plan that fits."""

from pathlib import Path

import pytest

from distill.problems.benchmarks import BENCHMARKS, is_benchmark
from distill.problems.layouts import LAYOUTS
from distill.recipe import load_recipe
from distill.train import plan

ROOT = Path(__file__).resolve().parent.parent
GPU = ["1.5b", "7b", "7b-qlora", "8b", "14b", "14b-qlora"]
BUNDLED = (ROOT / "data" / "problems").resolve()
REPORTED = {"math500", "aime24", "aime25", "gpqa_diamond"}
# Positions in the published config.json of the bases (Qwen2.5-Math-1.5B/7B: 4,096, so those recipes
# must raise them; these two hold 32k as published).
PUBLISHED_CONTEXT = {"meta-llama/Llama-3.1-8B": 131072, "Qwen/Qwen2.5-14B": 131072,
                     "Qwen/Qwen2.5-Math-1.5B": 4096, "Qwen/Qwen2.5-Math-7B": 4096}


def recipe(name):
    return load_recipe(ROOT / "recipes" / f"{name}.yaml")


def _bundled(path: str) -> bool:
    p = Path(path)
    return (ROOT / p if not p.is_absolute() else p).resolve().is_relative_to(BUNDLED)


@pytest.mark.parametrize("name", GPU)
def test_samples_a_real_mixture_never_the_bundled_file(name):
    r = recipe(name)
    assert r.problems.path is None and len(r.problems.sources) >= 2
    assert not any(_bundled(s.dataset) for s in r.problems.sources)
    domains = {s.domain or LAYOUTS[s.layout].domain for s in r.problems.sources}
    assert {"math", "code"} <= domains
    assert all("/" in s.dataset and not Path(s.dataset).exists() for s in r.problems.sources)  # hub names
    assert {"MATH-500", "AIME24", "AIME25", "GPQA-Diamond"} <= set(r.problems.decontaminate)


@pytest.mark.parametrize("name", GPU)
def test_evaluates_on_the_published_benchmarks_with_their_protocol(name):
    e = recipe(name).eval
    assert is_benchmark(e.problems) and not _bundled(e.problems)
    suites = {e.problems.split("@")[0], *(b.split("@")[0] for b in e.benchmarks)}
    assert REPORTED <= suites <= set(BENCHMARKS)
    assert e.temperature == 0.6 and e.top_p == 0.95 and e.max_tokens >= 32768
    assert e.n >= 16  # AIME's n >= 16 (one n serves every suite)


@pytest.mark.parametrize("name", GPU)
def test_32k_thinking_fits_the_student_from_sampling_to_training(name):
    r = recipe(name)
    context = r.student.max_position_embeddings or PUBLISHED_CONTEXT[r.student.model]
    assert r.train.max_length == 32768
    assert r.filter.max_length == r.train.max_length and r.filter.tokenizer == r.student.model
    assert r.sampling.max_tokens <= r.filter.max_length
    if "Math" in r.student.model:  # Qwen2.5-Math ships 4,096 positions: the recipe must extend them
        assert r.student.max_position_embeddings >= 32768 and r.student.rope_theta == 300000
    assert context >= r.train.max_length


@pytest.mark.parametrize("name", GPU)
def test_sampling_follows_the_evidence(name):
    s = recipe(name).sampling
    assert s.n == 16 and s.temperature == 0.6 and s.top_p == 0.95
    assert recipe(name).teacher.system_prompt is None and recipe(name).teacher.few_shot == 0


@pytest.mark.parametrize("name", GPU)
def test_plan_fits_8_x_80_gib_at_the_context_length(name):
    p = plan.estimate(recipe(name), gpus=8, gpu_mem_gib=80)
    assert p.seq == 32768 and p.fits, plan.render(p)


@pytest.mark.parametrize("name", GPU)
def test_header_states_data_context_hours_and_the_published_aim(name):
    head = "\n".join(line for line in (ROOT / "recipes" / f"{name}.yaml").read_text().splitlines()
                     if line.startswith("#"))
    for word in ("Data:", "Context:", "GPU-hours:", "Aims at:", "MATH-500", "AIME24", "distill data"):
        assert word in head, f"{name}: header lacks {word!r}"
