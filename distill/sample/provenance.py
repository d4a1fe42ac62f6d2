"""What makes a trace what it is, as hashes: the settings key and the prompt hash each trace carries.

Only what changes a trace counts: the teacher model, the prompt (system line, few-shot examples,
the per-domain instructions of `sampling.prompts`, the problem's own messages) and the sampling parameters (temperature, top_p, max_tokens, seed,
extra_body). How traces are fetched (n, the problem set, concurrency, timeouts, retries, prices,
URLs) does not, so raising `n` or adding problems samples only what is missing.

    key = settings_key(recipe)                       # the run's key: traces with another one are not ours
    messages = messages_for(problem, recipe)
    trace.provenance = provenance(recipe, messages)  # {"settings", "prompt", "params"}
"""

from __future__ import annotations

import hashlib
import json

from distill.recipe import Recipe
from distill.records import Problem, Provenance
from distill.sample.prompts import teacher_messages

# Stand-ins whose prompts fingerprint the prompt templates, one per domain: a change to how prompts
# are built (code or recipe) changes the key even for problems no one has sampled yet.
_PROBES = [Problem(id="probe-math", problem="\x00problem\x00", answer="0"),
           Problem(id="probe-code", problem="\x00problem\x00", answer="", domain="code",
                   tests=[{"input": "\x00in\x00", "output": "\x00out\x00"}]),
           Problem(id="probe-call", problem="\x00problem\x00", answer="", domain="code",
                   tests=[{"input": "[]", "output": "0", "fn_name": "\x00fn\x00"}]),
           Problem(id="probe-choice", problem="\x00problem\x00", answer="A", domain="choice",
                   choices=["\x00a\x00", "\x00b\x00"])]


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def messages_for(problem: Problem, recipe: Recipe) -> list[dict]:
    """The chat messages the teacher gets for `problem` under this recipe."""
    t = recipe.teacher
    return teacher_messages(problem, t.system_prompt, t.few_shot, recipe.sampling.prompts)


def sampling_params(recipe: Recipe) -> dict:
    """The sampling parameters that change what a trace is (the per-sample seed derives from `seed`)."""
    s = recipe.sampling
    return {"temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_tokens, "seed": s.seed,
            "extra_body": s.extra_body}


def settings_key(recipe: Recipe) -> str:
    """The key of everything that makes a trace what it is; traces with another key are not this run's."""
    t = recipe.teacher
    if t.backend == "dataset":  # imported traces: the set and how its rows are read
        return _sha(["dataset", t.model, t.dataset_layout, t.dataset_split, t.dataset_config])
    # A requantized teacher is another model; server arguments (threads, cache types) are not keyed.
    model = f"{t.model}@{t.requantize}" if t.requantize else t.model
    return _sha(["teacher", model, sampling_params(recipe), [messages_for(p, recipe) for p in _PROBES]])


def prompt_hash(messages: list[dict]) -> str:
    return _sha(messages)


def provenance(recipe: Recipe, messages: list[dict], key: str | None = None) -> Provenance:
    return Provenance(settings=key or settings_key(recipe), prompt=prompt_hash(messages),
                      params=sampling_params(recipe))
