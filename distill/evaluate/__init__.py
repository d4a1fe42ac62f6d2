"""Stage 4, evaluation: a model (HF folder, GGUF file or endpoint) and problems in, pass@k out.

Generates with the student's template through a backend (`registry` picks it: transformers, llama.cpp
in process, an endpoint, or `served`: a vLLM or llama.cpp server started for the model), judges with
the filter's own verifier, and reports pass@1 ± standard error over n samples, unbiased pass@k,
truncation rate, mean thinking tokens (`stats`) and accuracy under thinking budgets. `compare` puts
two runs side by side.

    results = distill.evaluate.run("data/runs/smol/student", problems, recipe.eval)
"""

from distill.evaluate.harness import run

__all__ = ["run"]
