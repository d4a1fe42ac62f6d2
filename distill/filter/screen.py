"""Screening problems with the filter's own rules before any teacher call: a math gold answer the
verifier cannot parse (every trace of it would be `unparseable_gold`, after being paid for), and a
problem that shares a word n-gram with an eval set of `problems.decontaminate` (open-r1's
decontaminate.py rule: any shared 8-gram, numbers or not).

    problems, report = build_problems(recipe.problems, problem_checks(recipe))
"""

from __future__ import annotations

from distill.errors import DistillError
from distill.filter.dedup import Decontaminator, load_eval_texts
from distill.filter.verify import math_equal
from distill.problems.mixture import Checks
from distill.recipe import Recipe
from distill.records import Problem


def problem_checks(recipe: Recipe) -> Checks:
    p = recipe.problems
    decontaminators = []
    for name in p.decontaminate:
        try:
            texts, _ = load_eval_texts([name])
        except DistillError as e:
            raise DistillError(str(e).replace("`filter.decontaminate`", "`problems.decontaminate`")) from None
        decontaminators.append((name, Decontaminator(texts, p.decontaminate_ngram, same_numbers=False)))

    def gold(problem: Problem) -> str | None:
        unparseable = problem.domain == "math" and math_equal(problem.answer, problem.answer) is None
        return "unparseable_gold" if unparseable else None

    def contaminated(problem: Problem) -> str | None:
        return next((f"contaminated:{name}" for name, d in decontaminators if d.contaminated(problem.problem)), None)

    return Checks(gold=gold if p.sources else None, contaminated=contaminated if decontaminators else None)
