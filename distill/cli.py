"""The `distill` command line: a thin wrapper over each stage's `run`.

    distill validate recipes/*.yaml
    distill run recipes/smol.yaml --set sampling.n=8 --from filter
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

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
def run(recipe: Path, set_: Optional[list[str]] = typer.Option(None, "--set", help=SET_HELP),
        from_stage: Optional[str] = typer.Option(None, "--from", help="Rerun from this stage on."),
        to_stage: Optional[str] = typer.Option(None, "--to", help="Stop after this stage.")) -> None:
    """The whole factory: problems -> sample -> filter -> train -> eval -> export.
    Stages whose inputs and settings did not change are skipped."""
    from distill import pipeline

    pipeline.run(_recipe(recipe, set_), from_stage, to_stage)


@app.command("sample")
def sample_cmd(recipe: Path, set_: Optional[list[str]] = typer.Option(None, "--set", help=SET_HELP)) -> None:
    """Teacher traces into data/runs/<recipe>/traces.jsonl (resumable: rerun to continue)."""
    from distill import pipeline

    pipeline.run(_recipe(recipe, set_), to_stage="sample")


@app.command("filter")
def filter_cmd(traces: Path, out: Path = typer.Option(..., "--out", help="Output folder."),
               recipe: Optional[Path] = typer.Option(None, help="Take filter settings from this recipe."),
               set_: Optional[list[str]] = typer.Option(None, "--set", help="filter.KEY=VALUE (needs --recipe)"),
               workers: Optional[int] = typer.Option(None, min=1, help="Judging processes (default: all cores)."),
               ) -> None:
    """Judge traces: writes OUT/accepted.jsonl, OUT/rejected.jsonl, OUT/report.json, report.md and plots."""
    from distill import filter as trace_filter
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
    if "sandbox" in rep and "NOT" in rep["sandbox"]["network"]:
        typer.echo(f"warning: code sandbox network: {rep['sandbox']['network']}", err=True)


@app.command("train")
def train_cmd(recipe: Path, set_: Optional[list[str]] = typer.Option(None, "--set", help=SET_HELP),
              traces: Optional[Path] = typer.Option(None, help="Accepted traces (default: the run's filter output)."),
              fresh: bool = typer.Option(False, "--fresh", help="Ignore existing checkpoints instead of resuming.")) -> None:
    """SFT of the student on the run's accepted traces (data/runs/<recipe>/filter/accepted.jsonl).

    One process, or `accelerate launch` (DDP / DeepSpeed ZeRO) when train.accelerate_config,
    train.num_processes or the visible GPUs ask for more; a rerun resumes from the last checkpoint."""
    from distill import train

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
             set_: Optional[list[str]] = typer.Option(None, "--set", help=SET_HELP),
             as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON.")) -> None:
    """Memory per GPU (weights, gradients, optimizer, activations) for a training recipe: fits or not,
    and a batch/accumulation that does. Reads a local model's config.json, or the published configs."""
    import json

    from distill import plan

    p = plan.estimate(_recipe(recipe, set_), gpus, gpu_mem)
    typer.echo(json.dumps(p.to_dict(), indent=2) if as_json else plan.render(p))
    if not p.fits:
        raise typer.Exit(1)


@app.command("eval")
def eval_cmd(model: str = typer.Argument(..., help="HF folder, .gguf file or embedded:NAME."),
             problems: Path = typer.Option(..., help="Problems JSONL."),
             split: str = typer.Option("eval", help="train, eval or all."),
             limit: Optional[int] = typer.Option(None, help="First N problems."),
             n: int = typer.Option(1, help="Samples per problem (pass@1 is averaged)."),
             temperature: float = typer.Option(0.6), max_tokens: int = typer.Option(1024),
             out: Optional[Path] = typer.Option(None, help="Per-sample results JSONL.")) -> None:
    """pass@1 of a model on a problem set, with the filter's verifier."""
    from distill import evaluate
    from distill.problems import load_split
    from distill.recipe import EvalCfg

    cfg = EvalCfg(problems=str(problems), split=split, limit=limit, n=n, temperature=temperature,
                  max_tokens=max_tokens)
    res = evaluate.run(model, load_split(problems, split, limit), cfg, out)
    typer.echo(f"pass@1 {res['pass@1']:.1%} over {res['problems']} problems x {res['n']} "
               f"({res['tokens_per_s']} tok/s)")


@app.command("export")
def export_cmd(target: Path = typer.Argument(..., help="A recipe YAML, or a trained student folder."),
               name: Optional[str] = typer.Option(None, help="Export name (folder export/<name>)."),
               quant: Optional[list[str]] = typer.Option(None, help="Quants besides F16 (repeatable).")) -> None:
    """GGUF F16 + quantized files into export/<name>/ with manifest, Modelfile and model card."""
    from distill import export
    from distill.recipe import ExportCfg

    if target.suffix in (".yaml", ".yml"):
        from distill import pipeline

        r = _recipe(target, [f"export.quants={list(quant)}"] if quant else None)
        pipeline.run(r, from_stage="export")
        return
    quants = ExportCfg(quants=list(quant)).quants if quant else ExportCfg().quants
    name = name or target.name
    manifest = export.run(target, Path("export") / name, name, quants, base_model=str(target),
                          recipe_name="(none)", recipe_sha256="0" * 64)
    typer.echo(f"wrote {[f['file'] for f in manifest['files']]} to export/{name}/")


@app.command()
def chat(gguf: Path = typer.Argument(..., help="An exported .gguf file."),
         show_thinking: bool = typer.Option(True, "--show-thinking/--hide-thinking",
                                            help="Stream the <think> part, or show only 'thought for N tokens'."),
         think_budget: Optional[int] = typer.Option(None, help="Close the thinking after N tokens and answer."),
         prompt: Optional[str] = typer.Option(None, "-p", "--prompt", help="Ask one question and exit."),
         max_tokens: int = typer.Option(1024), temperature: float = typer.Option(0.6)) -> None:
    """Chat with an exported student through llama.cpp."""
    from distill import chat as chat_mod

    if not gguf.exists():
        raise DistillError(f"{gguf} not found; export a student with `make student` first")
    chat_mod.interactive(str(gguf), show_thinking, think_budget, prompt, max_tokens, temperature)


def main() -> None:
    try:
        app()
    except DistillError as e:
        err.print(f"error: {e}", style="red", highlight=False, markup=False)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted; rerun the same command to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
