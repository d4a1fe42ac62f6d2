"""STaR rounds (Zelikman et al. 2022, "STaR: Bootstrapping Reasoning With Reasoning"): round 1 is the
student trained on the teacher's accepted traces; in each later round the last student, served by
llama-server, answers the train problems zero-shot (the prompt it was trained and is judged on), the
same filter keeps its correct traces, and the next student trains from the base model (as STaR does,
so errors do not compound) on the union of every round's accepted traces: one per distinct completion,
the `filter.max_per_problem` shortest per problem. While the last student is served, it is also
evaluated on the eval split, which gives the accuracy per round; the last round's student is the one
the eval and export stages take.

    rows = run(recipe, Path("data/runs/smol"), train_problems, eval_problems)   # also rounds.json
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from rich.console import Console

from distill.evaluate import harness as evaluate
from distill.evaluate.backends import context_length
from distill.evaluate.served import ServedBackend
from distill.filter import judging as trace_filter
from distill.filter.dedup import normalise
from distill.filter.judging import n_tokens
from distill.recipe import Recipe
from distill.records import BadLine, Problem, Trace, read_records, write_json, write_jsonl
from distill.sample import sampler as sample
from distill.train import sft as train

console = Console()


def round_dir(run_dir: Path, r: int) -> Path:
    return Path(run_dir) / "rounds" / str(r)


def student_of(run_dir: Path, r: int) -> Path:
    """Round r's student: the train stage's for round 1, rounds/<r>/student after."""
    return Path(run_dir) / "student" if r == 1 else round_dir(run_dir, r) / "student"


def training_set_of(run_dir: Path, r: int) -> Path:
    return Path(run_dir) / "filter" / "accepted.jsonl" if r == 1 else round_dir(run_dir, r) / "train.jsonl"


def union(paths: list[Path], k: int | None) -> list[Trace]:
    """Accepted traces of several rounds as one training set: one trace per (problem, normalised
    completion), then the k shortest per problem (the filter's rule; earlier rounds first on ties).
    sample_index is renumbered per problem so (problem_id, sample_index) stays unique; `teacher` still
    says which model wrote each trace."""
    by_problem: dict[str, list[Trace]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    for path in paths:
        for t in read_records(path, Trace):
            if isinstance(t, BadLine) or (t.problem_id, normalise(t.completion)) in seen:
                continue
            seen.add((t.problem_id, normalise(t.completion)))
            by_problem[t.problem_id].append(t)
    out = []
    for group in by_problem.values():
        group = sorted(group, key=n_tokens)[:k] if k else group  # sorted() is stable: earlier rounds win ties
        out += [t.model_copy(update={"sample_index": i, "verdict": None}) for i, t in enumerate(group)]
    return out


def student_sampling(recipe: Recipe, url: str, alias: str) -> Recipe:
    """The recipe the sampler gets for a round: the served student as teacher, zero-shot (no system
    line, no worked examples), the sampling section's settings, `rounds.n` samples per problem."""
    data = recipe.resolved()
    data["teacher"] = {"backend": "openai", "model": alias, "base_urls": [url]}
    data["sampling"]["n"] = recipe.rounds.n or recipe.sampling.n
    data["sampling"].pop("prompts", None)  # the prompts it is trained and judged on, not the teacher's wording
    # Whole answers: the student is our own llama-server on loopback (no hung remote to detect), and
    # llama-server breaks a kept-alive connection after a streamed answer (see OpenAITeacher.keep_alive).
    data["sampling"]["stream"] = False
    return Recipe.model_validate(data)


def _count(path: Path) -> int:
    return sum(1 for t in read_records(path, Trace) if not isinstance(t, BadLine)) if path.exists() else 0


def one_round(recipe: Recipe, run_dir: Path, r: int, problems: list[Problem], eval_problems: list[Problem],
              stop_token: str | None = None) -> dict:
    """Round r >= 2: serve student r-1, evaluate it, let it sample, filter, train student r on the union.
    `stop_token`: the chat template's turn end, as the eval stage passes it."""
    d, previous = round_dir(run_dir, r), student_of(run_dir, r - 1)
    s, e = recipe.sampling, recipe.eval
    console.print(f"round {r}: student of round {r - 1} serves {len(eval_problems)} eval problems and samples "
                  f"{len(problems)} train problems x {recipe.rounds.n or s.n}")
    # The eval stage's served backend, with a slot per request either side keeps in flight and room for
    # the sampler's longest answer too.
    served = e.model_copy(update={"batch_size": max(s.max_concurrent, e.batch_size),
                                  "n_ctx": max(context_length(e), 1024 + s.max_tokens)})
    with ServedBackend(str(previous), served, stop_token=stop_token) as backend:
        scored = evaluate.run(backend, eval_problems, e, d / "eval-previous.jsonl", label=f"student round {r - 1}")
        sampled = sample.run(student_sampling(recipe, backend.url, backend.served_model), problems,
                             d / "traces.jsonl")
    sample.check_failures(sampled, recipe.sampling)
    rep = trace_filter.run(d / "traces.jsonl", d / "filter", recipe.filter, progress=False)
    train_set = union([training_set_of(run_dir, r - 1), d / "filter" / "accepted.jsonl"], recipe.filter.max_per_problem)
    write_jsonl(training_set_of(run_dir, r), train_set)
    console.print(f"round {r}: student of round {r - 1} scored {scored['pass@1']:.1%} on the eval split; "
                  f"{rep['accepted']} of {rep['input']} of its traces accepted; training on {len(train_set)} "
                  f"(union with round {r - 1}'s {_count(training_set_of(run_dir, r - 1))})")
    summary = train.run(recipe, training_set_of(run_dir, r), student_of(run_dir, r))
    return {"previous_eval": scored, "sampled": sampled["sampled"], "accepted": rep["accepted"],
            "trained_on": len(train_set), "steps": summary["steps"], "losses": summary["losses"],
            "tokens_per_s": sampled["completion_tokens_per_s"]}


def run(recipe: Recipe, run_dir: Path, problems: list[Problem], eval_problems: list[Problem],
        stop_token: str | None = None) -> list[dict]:
    """Rounds 2..rounds.count (a no-op for 1); writes and returns rounds.json: one row per round's student,
    with the traces it trained on and, but for the last (the eval stage's), its eval split score."""
    run_dir = Path(run_dir)
    path = run_dir / "rounds.json"
    rows = [{"round": 1, "student": str(student_of(run_dir, 1)), "trained_on": _count(training_set_of(run_dir, 1)),
             "new_traces_from": recipe.teacher.model}]
    for r in range(2, recipe.rounds.count + 1):
        info = one_round(recipe, run_dir, r, problems, eval_problems, stop_token)
        rows[-1]["eval"] = {k: v for k, v in info.pop("previous_eval").items() if k != "model"}
        rows.append({"round": r, "student": str(student_of(run_dir, r)), "new_traces_from": f"student of round {r - 1}",
                     **info})
        write_json(path, rows)
    if recipe.rounds.count == 1:
        path.unlink(missing_ok=True)  # one round: nothing per round to show beside the eval stage's
    return rows if recipe.rounds.count > 1 else []

