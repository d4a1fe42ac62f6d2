"""What an earlier run left: the samples already in traces.jsonl and those that failed for good,
read in one streamed pass (a file of many gigabytes is never held in memory; per sample only its
key stays, per problem the hash of the prompt it was sampled with).

A trace counts as done only under this run's settings key; traces made under another key (or with
none: files from before provenance was recorded) make the file mixed, which the sampler refuses.
Failures for good (`sample_failures.jsonl`: a 400 refusal, a prompt over the context) are skipped
on a rerun with the same settings and prompt, so one bad problem never blocks a run.

    state = scan(traces_path, failures_path, settings_key(recipe))
    state.is_done("q1", 0), state.failed_for_good("q1", 1, prompt)
    counts = plan(recipe, problems, state, traces_path, previous_failed)  # what is to do, what is there
    for problem, index in jobs(recipe, problems, state): ...             # lazily
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from distill.errors import DistillError
from distill.recipe import Recipe
from distill.records import Problem, Trace
from distill.sample.provenance import messages_for, prompt_hash


@dataclass
class State:
    key: str
    done: dict[str, set[int]] = field(default_factory=dict)  # problem id -> sample indices in the file
    prompts: dict[str, str] = field(default_factory=dict)  # problem id -> prompt hash its traces carry
    permanent: dict[tuple[str, int], str] = field(default_factory=dict)  # failed for good -> prompt hash
    traces: int = 0  # this run's traces in the file
    foreign: int = 0  # traces under another settings key, or none
    foreign_key: str | None = None  # the first other key seen
    foreign_example: str | None = None

    def is_done(self, problem_id: str, index: int) -> bool:
        return index in self.done.get(problem_id, ())

    def failed_for_good(self, problem_id: str, index: int, prompt: str) -> bool:
        return self.permanent.get((problem_id, index)) == prompt


def _lines(path: Path):
    """Whole lines of a JSONL file as bytes; a torn last line (no newline) is an interrupted write."""
    with open(path, "rb") as f:
        for raw in f:
            if raw.endswith(b"\n") and raw.strip():
                yield raw


def scan(traces_path: Path, failures_path: Path, key: str) -> State:
    state = State(key)
    if traces_path.exists():
        for raw in _lines(traces_path):
            try:
                trace = Trace.model_validate_json(raw)
            except ValidationError:
                continue  # not a trace: the filter rejects it as malformed_record; it is not done
            prov = trace.provenance
            if prov is None or prov.settings != key:
                state.foreign += 1
                state.foreign_key = state.foreign_key or (prov.settings if prov else "unrecorded")
                state.foreign_example = state.foreign_example or (
                    f"{trace.problem_id}#{trace.sample_index} made under "
                    f"{'settings ' + prov.settings if prov else 'no recorded settings'}")
                continue
            pid = trace.problem_id
            state.done.setdefault(pid, set()).add(trace.sample_index)
            state.prompts.setdefault(pid, prov.prompt or "")
            state.traces += 1
    if failures_path.exists():
        for raw in _lines(failures_path):
            try:
                rec = json.loads(raw)
                if rec.get("settings") == key:
                    state.permanent[(rec["problem_id"], int(rec["sample_index"]))] = rec.get("prompt", "")
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
    return state


def plan(recipe: Recipe, problems: list[Problem], state: State, out_path: Path, previous_failed: set) -> Counter:
    """Count what is to do, already there or failed for good; refuse traces sampled with another
    prompt under the same problem id. The jobs themselves are generated lazily by `jobs`."""
    counts: Counter = Counter()
    stale = []
    for p in problems:
        prompt = prompt_hash(messages_for(p, recipe))
        if state.prompts.get(p.id, prompt) != prompt:
            stale.append(p.id)
            continue
        for i in range(recipe.sampling.n):
            counts["requested"] += 1
            if state.is_done(p.id, i):
                counts["already_done"] += 1
            elif state.failed_for_good(p.id, i, prompt):
                counts["failed_for_good_before"] += 1
            else:
                counts["todo"] += 1
                counts["retried_previous_failures"] += (p.id, i) in previous_failed
    if stale:
        raise DistillError(f"{out_path} holds traces of {len(stale)} problems (e.g. {stale[0]}) sampled with "
                           "another prompt than this run would send: their text or the prompt changed under the "
                           "same id. Move the file aside to sample afresh, or restore the problems and prompt")
    return counts


def jobs(recipe: Recipe, problems: list[Problem], state: State):
    """(problem, sample index) of every sample to ask for, one at a time (never a list of millions)."""
    for p in problems:
        prompt = None
        for i in range(recipe.sampling.n):
            if state.is_done(p.id, i):
                continue
            prompt = prompt or prompt_hash(messages_for(p, recipe))
            if not state.failed_for_good(p.id, i, prompt):
                yield p, i


def set_aside_file(out_path: Path, state: State) -> None:
    """Move a file of other settings aside; bring back the one of ours, if any."""
    other = state.foreign_key or "unknown"
    aside = out_path.with_name(f"{out_path.stem}.{other}{out_path.suffix}")
    k = 1
    while aside.exists():
        aside, k = out_path.with_name(f"{out_path.stem}.{other}.{k}{out_path.suffix}"), k + 1
    out_path.rename(aside)
    print(f"teacher or sampling settings changed: the traces made under the old ones are kept in {aside}",
          file=sys.stderr)
    ours = out_path.with_name(f"{out_path.stem}.{state.key}{out_path.suffix}")
    if ours.exists():
        ours.rename(out_path)
        print(f"traces made earlier under these settings are back from {ours}", file=sys.stderr)
