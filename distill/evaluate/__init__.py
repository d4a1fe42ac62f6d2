"""Stage 4, evaluation: a model (HF folder, GGUF file or endpoint) and problems in, pass@k out.

Generates with the student's template through a backend (`backends`), judges with the filter's own
verifier, and reports pass@1 over n samples, unbiased pass@k and accuracy under thinking budgets.
`compare` puts two runs side by side.

    results = distill.evaluate.run("data/runs/smol/student", problems, recipe.eval)
"""

from distill.evaluate.harness import run

__all__ = ["run"]
