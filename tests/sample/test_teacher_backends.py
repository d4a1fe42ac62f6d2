"""The in-process backends: llama.cpp in this process (the embedded GGUF) and a transformers model
with batched generation (a tiny 2-layer Llama with SmolLM2's tokenizer)."""

from collections import Counter

from distill.recipe import load_recipe
from distill.records import BadLine, Problem, Trace, read_records
from distill.sample import sampler as sample
from distill.sample.teacher import open_teacher

PROBLEMS = [Problem(id=f"b{i}", problem=f"What is {i} + 2?", answer=str(i + 2), split="train") for i in range(3)]


def _recipe(tmp_path, teacher: str, **over):
    (tmp_path / "r.yaml").write_text(f"""
name: t
student: {{model: x}}
teacher: {teacher}
problems: {{path: p.jsonl}}
sampling: {{n: 2, max_tokens: 12, max_concurrent: 6, timeout_s: 120, temperature: 0.7}}
eval: {{problems: p.jsonl}}
""")
    return load_recipe(tmp_path / "r.yaml", [f"{k}={v}" for k, v in over.items()])


def _traces(path):
    recs = list(read_records(path, Trace))
    assert not [r for r in recs if isinstance(r, BadLine)]
    return recs


def test_llamacpp_in_process(tmp_path):
    recipe = _recipe(tmp_path, "{backend: llamacpp, model: embedded:smollm2-135m-instruct, in_process: true, "
                               "n_ctx: 512, n_threads: 1}", **{"sampling.max_tokens": 8})
    out = tmp_path / "traces.jsonl"
    summary = sample.run(recipe, PROBLEMS[:2], out, show_progress=False)
    recs = _traces(out)
    assert summary["sampled"] == 4 and not summary["failed"] and summary["requests_by_url"] == {}
    assert sorted(r.key for r in recs) == [("b0", 0), ("b0", 1), ("b1", 0), ("b1", 1)]
    assert all(r.completion and r.completion_tokens and r.finish_reason in ("stop", "length") for r in recs)
    assert not (tmp_path / "teacher-server.log").exists()  # no server was started


def test_hf_batched_generation(tmp_path, tiny_llama_dir):
    recipe = _recipe(tmp_path, f"{{backend: hf, model: '{tiny_llama_dir}', batch_size: 4}}")
    out = tmp_path / "traces.jsonl"
    teacher = open_teacher(recipe.teacher, tmp_path)  # nothing is loaded until it is entered
    from distill.sample import teacher as registry

    # Keep a handle on the teacher the sampler builds, to see how it batched.
    made = []
    original = registry.BACKENDS["hf"]
    registry.BACKENDS["hf"] = lambda cfg, run_dir: made.append(original(cfg, run_dir)) or made[-1]
    try:
        summary = sample.run(recipe, PROBLEMS, out, show_progress=False)
    finally:
        registry.BACKENDS["hf"] = original
    recs = _traces(out)
    assert summary["sampled"] == 6 and len(recs) == 6 and not summary["failed"]
    batches = made[0].batches
    assert sum(batches) == 6 and max(batches) > 1 and max(batches) <= 4  # requests were batched
    assert all(r.completion_tokens and 0 < r.completion_tokens <= 12 for r in recs)
    assert all(r.prompt_tokens > 10 for r in recs)
    assert Counter(r.problem_id for r in recs) == {"b0": 2, "b1": 2, "b2": 2}
    assert teacher.name == str(tiny_llama_dir)
