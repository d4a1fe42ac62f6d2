"""The `distill` command line: a thin wrapper over each stage's `run`.

    distill validate recipes/*.yaml
    distill run recipes/smol.yaml --set sampling.n=8 --from filter
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from distill.errors import DistillError

app = typer.Typer(
    help="A factory for small reasoning models: teacher sampling -> rejection filter -> SFT -> eval -> GGUF.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
err = Console(stderr=True)
SET_HELP = "Override a recipe key, e.g. --set train.learning_rate=1e-5 (repeatable)."


def _recipe(path: Path, overrides: list[str] | None = None):
    from distill.recipe import load_recipe

    return load_recipe(path, overrides or [])


@app.command()
def validate(recipes: list[Path] = typer.Argument(..., help="Recipe YAML files.")) -> None:
    """Load each recipe and print every problem at once (YAML key, line, fix); exit 2 if any."""
    from distill.errors import RecipeError

    failed = []
    for path in recipes:
        try:
            _recipe(path)
            typer.echo(f"{path}: ok")
        except RecipeError as e:
            failed.append(str(e))
    if failed:
        raise DistillError("\n".join(failed), exit_code=2)


@app.command()
def run(recipe: Path, set_: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
        from_stage: str | None = typer.Option(None, "--from", help="Rerun from this stage on."),
        to_stage: str | None = typer.Option(None, "--to", help="Stop after this stage.")) -> None:
    """The whole factory: problems -> sample -> filter -> train -> eval -> export.
    Stages whose inputs and settings did not change are skipped."""
    from distill import pipeline

    pipeline.run(_recipe(recipe, set_), from_stage, to_stage)


@app.command("sample")
def sample_cmd(recipe: Path, set_: list[str] | None = typer.Option(None, "--set", help=SET_HELP)) -> None:
    """Teacher traces into data/runs/<recipe>/traces.jsonl (resumable: rerun to continue)."""
    from distill import pipeline

    pipeline.run(_recipe(recipe, set_), to_stage="sample")


@app.command("filter")
def filter_cmd(traces: Path, out: Path = typer.Option(..., "--out", help="Output folder."),
               recipe: Path | None = typer.Option(None, help="Take filter settings from this recipe."),
               set_: list[str] | None = typer.Option(None, "--set", help="filter.KEY=VALUE (needs --recipe)"),
               workers: int | None = typer.Option(None, min=1, help="Judging processes (default: all cores)."),
               ) -> None:
    """Judge traces: writes OUT/accepted.jsonl, OUT/rejected.jsonl, OUT/report.json, report.md and plots."""
    from distill.filter import judging as trace_filter
    from distill.recipe import FilterCfg

    if not traces.exists():
        raise DistillError(f"{traces} not found; give the traces file the sampler wrote "
                           "(data/runs/<recipe>/traces.jsonl)")
    if set_ and not recipe:
        raise DistillError("--set needs --recipe (the settings are that recipe's `filter` section)")
    cfg = _recipe(recipe, set_).filter if recipe else FilterCfg()
    rep = trace_filter.run(traces, out, cfg, workers=workers)
    typer.echo(f"accepted {rep['accepted']} / {rep['input']}; by reason: {rep['by_reason']}")
    typer.echo(f"report: {out}/report.md ({rep['run']['traces_per_s']} traces/s on {rep['run']['workers']} processes)")
    if "sandbox" in rep:  # the isolation in force for code answers (or why code judging refused)
        typer.echo(f"code jail: {rep['sandbox']['summary']}", err=not rep["sandbox"]["in_force"])


@app.command("train")
def train_cmd(recipe: Path, set_: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
              traces: Path | None = typer.Option(None, help="Accepted traces (default: the run's filter output)."),
              fresh: bool = typer.Option(False, "--fresh", help="Move existing checkpoints aside and start from step 0.")) -> None:
    """SFT of the student on the run's accepted traces (data/runs/<recipe>/filter/accepted.jsonl).

    One process, or `accelerate launch` (DDP / DeepSpeed ZeRO) when train.accelerate_config,
    train.num_processes or the visible GPUs ask for more. A rerun of the same run (student, train
    settings, traces) resumes from its last checkpoint; a changed run moves the old ones aside."""
    from distill.train import sft as train

    r = _recipe(recipe, set_)
    accepted = traces or r.run_dir / "filter" / "accepted.jsonl"
    if not accepted.exists():
        raise DistillError(f"{accepted} not found; run `distill run {recipe} --to filter` first")
    summary = train.run(r, accepted, r.run_dir / "student", resume=not fresh)
    typer.echo(f"trained {summary['steps']} steps on {summary.get('world_size', 1)} process(es); "
               f"student in {r.run_dir / 'student'}")


@app.command("plan")
def plan_cmd(recipe: Path, gpus: int = typer.Option(1, "--gpus", help="GPUs (data-parallel processes) in all."),
             gpu_mem: float = typer.Option(80.0, "--gpu-mem", help="Memory of one GPU in GiB."),
             set_: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
             as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON.")) -> None:
    """Memory per GPU (weights, gradients, optimizer, activations) for a training recipe: fits or not,
    and a batch/accumulation that does. Reads a local model's config.json, or the published configs."""
    import json

    from distill.train import plan

    p = plan.estimate(_recipe(recipe, set_), gpus, gpu_mem)
    typer.echo(json.dumps(p.to_dict(), indent=2) if as_json else plan.render(p))
    if not p.fits:
        raise typer.Exit(1)


@app.command("data")
def data_cmd(recipe: Path, set_: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
             as_json: bool = typer.Option(False, "--json", help="Print the report as JSON.")) -> None:
    """Preview a recipe's problems before paying a teacher: rows and domains per source, answer parse
    rate, why rows were skipped, what decontamination removes, prompt tokens, the teacher's budget."""
    import json

    from rich.console import Console

    from distill.filter.screen import problem_checks
    from distill.problems import preview
    from distill.problems.mixture import build_problems
    from distill.sample.prompts import user_prompt

    r = _recipe(recipe, set_)
    problems, report = build_problems(r.problems, problem_checks(r))
    count, counted_with = _token_counter(r.student.model)
    report["tokens"] = preview.token_stats(problems, user_prompt, count, counted_with)
    report["teacher"] = preview.teacher_budget(report["tokens"], r.sampling, r.teacher)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    for item in preview.render(report):
        Console().print(item)


app.command("problems", hidden=True)(data_cmd)  # the same verb by the stage's name


def _token_counter(model: str):
    """The student's tokenizer where it loads (local folder, cache, embedded), else an estimate."""
    try:
        from transformers import AutoTokenizer

        from distill.assets import hf_folder

        tok = AutoTokenizer.from_pretrained(hf_folder(model))
        return (lambda text: len(tok(text, add_special_tokens=False)["input_ids"])), f"{model} tokenizer"
    except Exception as e:  # noqa: BLE001 - offline hub, gated repo: an estimate still sizes the run
        from distill.filter.quality import estimate_tokens

        return estimate_tokens, f"estimated: words and punctuation ({model} tokenizer not loadable: {type(e).__name__})"


@app.command("eval")
def eval_cmd(model: str = typer.Argument(..., help="HF folder, .gguf file, embedded:NAME or an OpenAI-compatible "
                                                   "base URL (http://host:port/v1)."),
             problems: Path | None = typer.Option(None, help="Problems JSONL."),
             benchmark: str | None = typer.Option(None, help="math500, aime24, aime25, gpqa_diamond, gsm8k "
                                                                "(NAME@DIR: a local copy in the hub layout)."),
             split: str = typer.Option("eval", help="train, eval or all (with --problems)."),
             limit: int | None = typer.Option(None, help="First N problems."),
             n: int = typer.Option(1, help="Samples per problem (pass@1 is averaged)."),
             pass_k: list[int] | None = typer.Option(None, "--pass-k", help="Also unbiased pass@k (repeatable)."),
             temperature: float = typer.Option(0.6), top_p: float = typer.Option(0.95),
             max_tokens: int = typer.Option(1024), batch_size: int = typer.Option(16),
             seed: int = typer.Option(0),
             think_budget: list[int] | None = typer.Option(
                 None, "--think-budget", help="Accuracy at this thinking budget, by budget forcing (repeatable)."),
             answer_tokens: int = typer.Option(256, help="Answer tokens after a forced </think>."),
             served: bool = typer.Option(False, "--served", help="Start a server for MODEL (vLLM on GPU, llama.cpp's "
                                                                  "server on CPU and for GGUF) and evaluate through it."),
             engine: str = typer.Option("auto", help="With --served: auto, vllm or llamacpp."),
             n_ctx: int | None = typer.Option(None, "--n-ctx", help="Tokens per sequence (vLLM --max-model-len)."),
             stop: str | None = typer.Option(None, help="Also stop at this token (the chat template's turn end)."),
             served_model: str = typer.Option("default", help="Endpoint: the served model name."),
             api_key_env: str | None = typer.Option(None, help="Endpoint: env var holding the API key."),
             tokenizer: str | None = typer.Option(None, help="Endpoint: HF folder (or .gguf) whose chat template "
                                                               "renders the prompts (needed for budget forcing)."),
             out: Path | None = typer.Option(None, help="Per-sample results JSONL (summary beside it).")) -> None:
    """pass@1 ± standard error (and pass@k, truncation, thinking tokens, the thinking-budget curve) of a
    model, with the filter's verifier."""
    from pydantic import ValidationError
    from rich.table import Table

    from distill.evaluate import harness as evaluate
    from distill.recipe import EvalCfg

    if (problems is None) == (benchmark is None):
        raise DistillError("give one of --problems FILE or --benchmark NAME")
    try:
        cfg = EvalCfg(problems=str(problems or benchmark), split=split, limit=limit, n=n, pass_k=pass_k or [],
                      temperature=temperature, top_p=top_p, max_tokens=max_tokens, batch_size=batch_size,
                      seed=seed, think_budgets=think_budget or [], answer_tokens=answer_tokens, served=served,
                      engine=engine, n_ctx=n_ctx)
    except ValidationError as e:
        raise DistillError("; ".join((f"--{'-'.join(str(p) for p in x['loc']).replace('_', '-')}: " if x["loc"] else "")
                                     + x["msg"].removeprefix("Value error, ") for x in e.errors())) from None
    if benchmark:
        from distill.problems.benchmarks import load_benchmark

        chosen = load_benchmark(benchmark, limit)
    else:
        from distill.problems.bundled import load_split

        chosen = load_split(problems, split, limit)
    if not chosen:
        raise DistillError(f"no problems selected from {problems or benchmark} (split {split})")
    endpoint = {"served_model": served_model, "api_key_env": api_key_env, "tokenizer": tokenizer} \
        if model.startswith(("http://", "https://")) else {}
    from rich.progress import Progress

    from distill.evaluate.registry import open_backend

    with Progress() as progress, open_backend(model, cfg, None, progress, stop_token=stop, **endpoint) as backend:
        res = evaluate.run(backend, chosen, cfg, out, label=model)
        curve = evaluate.budget_curve(backend, chosen, cfg, cfg.think_budgets, out.with_suffix("") if out else None,
                                      label=model) if cfg.think_budgets else None
    table = Table(title=f"{model} on {problems or benchmark}")
    ks = [k for k in res if k.startswith("pass@") and not k.endswith("_se")]
    cols = ["truncation_rate", "closed_think_rate", "mean_completion_tokens", "mean_thinking_tokens", "tokens_per_s"]
    for c in ["problems", "n", *ks, *cols]:
        table.add_column(c.replace("_", " "), justify="right")
    table.add_row(str(res["problems"]), str(res["n"]), *[f"{res[k]:.1%} ± {res[k + '_se']:.1%}" for k in ks],
                  *[f"{res[c]:.1%}" if c.endswith("rate") else str(res[c]) for c in cols])
    Console().print(table)
    if curve:
        t = Table(title="accuracy vs thinking budget (budget forcing)")
        for c in ("budget", "pass@1", "mean thinking tokens", "forced"):
            t.add_column(c, justify="right")
        for p in curve["points"]:
            t.add_row(str(p["budget"]), f"{p['pass@1']:.1%} ± {p['pass@1_se']:.1%}", str(p["mean_thinking_tokens"]),
                      f"{p['forced_rate']:.0%}")
        Console().print(t)


@app.command("compare")
def compare_cmd(run_a: str = typer.Argument(..., help="A run folder (data/runs/<recipe>), recipe name or file."),
                run_b: str = typer.Argument(..., help="The run to compare it with.")) -> None:
    """Two runs' saved results in one table: accuracy by stage, budgets, funnel, loss, time."""
    from rich.table import Table

    from distill.evaluate.compare import compare

    headers, rows = compare(run_a, run_b)
    table = Table(title=f"{headers[1]} (A) vs {headers[2]} (B)")
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


@app.command("export")
def export_cmd(target: Path = typer.Argument(..., help="A recipe YAML, a trained student folder or a PEFT adapter folder."),
               name: str | None = typer.Option(None, help="Export name (folder export/<name>)."),
               quant: list[str] | None = typer.Option(None, help="Quants besides F16 (repeatable)."),
               license: str = typer.Option("apache-2.0", help="general.license and the card's license."),
               base_model: str | None = typer.Option(None, help="general.base_models (default: the folder)."),
               eval_limit: int = typer.Option(20, help="Folder: bundled eval problems for held-out text and pass@1."),
               force: bool = typer.Option(False, "--force", help="Keep an export that fails its checks "
                                                                 "(tokenizer, F16 logits, KL divergence limits).")
               ) -> None:
    """GGUF F16 + quant ladder into export/<name>/, each file proven (tokenization, F16 logits, KL divergence
    and top-1 agreement to F16, pass@1) in manifest.json and the model card, with an Ollama Modelfile."""
    from distill.export import gguf as export
    from distill.recipe import EvalCfg, ExportCfg

    if target.suffix in (".yaml", ".yml"):
        from distill import pipeline

        sets = ([f"export.quants={list(quant)}"] if quant else []) + (["export.force=true"] if force else [])
        pipeline.run(_recipe(target, sets), from_stage="export")
        return
    if not target.is_dir():
        raise DistillError(f"{target} is neither a recipe (.yaml) nor a model folder")
    from distill.problems.bundled import generate_bundled, select

    cfg = ExportCfg(quants=list(quant), license=license) if quant else ExportCfg(license=license)
    name = name or target.name
    # Without a run folder the held-out text is the student's own answers to the bundled eval problems.
    bundled = generate_bundled()
    eval_cfg = EvalCfg(problems="bundled", max_tokens=512, batch_size=8)
    manifest = export.run(target, Path("export") / name, name, cfg, base_model=base_model or str(target),
                          recipe_name="(none)", recipe_sha256="0" * 64, heldout_problems=select(bundled, "eval", 40),
                          calibration_problems=select(bundled, "train", 64),
                          eval_problems=select(bundled, "eval", eval_limit) if eval_limit else None,
                          eval_cfg=eval_cfg, force=force)
    for f in manifest["files"]:
        typer.echo(f"{f['file']}: {f['bytes'] / 2**20:.1f} MiB, {f['bits_per_weight']} bpw, KL divergence to F16 "
                   f"{f['kld']:.4f}, same top-1 {f['top1_agreement']:.1%}, {f['tokens_per_s']} tok/s, "
                   f"{len(f.get('fallback_tensors', []))} fallback tensors")
    typer.echo(f"wrote export/{name}/ (manifest.json, Modelfile, README.md)")


@app.command()
def chat(gguf: Path = typer.Argument(..., help="An exported .gguf file."),
         show_thinking: bool = typer.Option(True, "--show-thinking/--hide-thinking",
                                            help="Stream the <think> part, or show only 'thought for N tokens'."),
         think: bool = typer.Option(True, "--think/--no-think", help="Let the student think first (/think in chat)."),
         think_budget: int | None = typer.Option(None, min=1, help="Close the thinking after N tokens and answer."),
         min_think: int = typer.Option(0, min=0, help="Thinking shorter than N tokens is extended with 'Wait' (s1)."),
         ctx: int | None = typer.Option(None, min=256, help="Context in tokens (default: the model's training "
                                                            "context, capped by free RAM and at 32k)."),
         prompt: str | None = typer.Option(None, "-p", "--prompt", help="Ask one question and exit."),
         max_tokens: int | None = typer.Option(None, min=1, help="Tokens per reply (default: until the context "
                                                                 "is full)."),
         temperature: float = typer.Option(0.6, min=0.0),
         threads: int | None = typer.Option(None, min=1, help="CPU threads (default: all cores).")) -> None:
    """Chat with an exported student through llama.cpp, streaming, with the conversation's history.
    In the chat: /reset, /think on|off, /budget N|off, /help."""
    from distill.laptop import session

    if not gguf.exists():
        raise DistillError(f"{gguf} not found; export a student with `make student` or fetch one with `distill pull`")
    session.interactive(str(gguf), show_thinking, prompt, ctx, max_tokens, temperature, think, think_budget,
                        min_think, threads)


@app.command()
def serve(gguf: Path = typer.Argument(..., help="An exported .gguf file."),
          port: int = typer.Option(8501, help="Port of the chat page on 127.0.0.1."),
          api_port: int | None = typer.Option(None, help="Port of the OpenAI-compatible API (default: a free one)."),
          ctx: int | None = typer.Option(None, min=256, help="Context per request in tokens (default: the model's "
                                                             "training context, capped by free RAM and at 32k)."),
          parallel: int = typer.Option(1, min=1, help="Requests the API serves at once (llama.cpp slots)."),
          temperature: float = typer.Option(0.6, min=0.0, help="The chat page's sampling temperature."),
          threads: int | None = typer.Option(None, min=1, help="CPU threads (default: all cores).")) -> None:
    """On 127.0.0.1: llama.cpp's own OpenAI-compatible server (reasoning in `reasoning_content`) and a
    browser chat page (Streamlit) that shows the thinking folded. Ctrl-C stops both."""
    from distill.laptop.serve import serve as serve_fn

    if not gguf.exists():
        raise DistillError(f"{gguf} not found; export a student with `make student` or fetch one with `distill pull`")
    serve_fn(gguf, port=port, api_port=api_port, ctx=ctx, parallel=parallel, temperature=temperature,
             threads=threads)


@app.command()
def pull(source: str = typer.Argument(..., help="http(s) URL of an export folder, a local export folder, or ORG/REPO."),
         quant: str = typer.Option("Q4_K_M", help="Which file of the export to fetch."),
         out: Path | None = typer.Option(None, help="Target folder (default: models/<export name>)."),
         revision: str | None = typer.Option(None, help="Hub revision (branch, tag or commit).")) -> None:
    """Download one quant of an exported student (manifest first; resumes; checks sha256)."""
    from distill.laptop.pull import pull as pull_fn

    dest = out or Path("models") / (source.rstrip("/").rsplit("/", 1)[-1] or "student")
    path = pull_fn(source, dest, quant, revision)
    typer.echo(f"{path} (sha256 verified); chat: distill chat {path}")


@app.command()
def publish(target: Path = typer.Argument(..., help="An export folder (export/<name>/) or its recipe YAML."),
            repo: str | None = typer.Option(None, help="Hub model repo ORG/REPO (default: the recipe's export.hub_repo)."),
            public: bool = typer.Option(False, "--public", help="Create the repo public (default private)."),
            dry_run: bool = typer.Option(False, "--dry-run", help="Verify and list the files, upload nothing.")) -> None:
    """Upload an export folder to a Hugging Face hub repo (GGUFs verified against the manifest first)."""
    from distill.laptop.publish import publish as publish_fn

    export_dir = target
    if target.suffix in (".yaml", ".yml"):
        r = _recipe(target)
        export_dir, repo = Path("export") / r.export_name, repo or r.export.hub_repo
    if not repo:
        raise DistillError("no hub repo: pass --repo ORG/REPO or set export.hub_repo in the recipe")
    res = publish_fn(export_dir, repo, private=not public, dry_run=dry_run)
    if dry_run:
        for f in res:
            typer.echo(f"{f['file']}  {f['bytes'] / 2**20:.1f} MiB")
        return
    typer.echo(f"published: {res}")


def main() -> None:
    try:
        app()
    except DistillError as e:
        err.print(f"error: {e}", style="red", highlight=False, markup=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted; rerun the same command to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
