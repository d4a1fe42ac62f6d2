"""The whole factory: problems -> sample -> filter -> train -> rounds -> eval -> export.

Each stage records the key of its inputs and settings in `data/runs/<recipe>/stages.json`; a stage
whose key did not change is skipped on a rerun. Sampling resumes where it stopped and samples only
what is missing (raising `sampling.n` or the problem set asks for the new samples alone); traces
made under other teacher settings are moved aside, never deleted, and brought back when those
settings return. Large files are keyed by cheap fingerprints, never re-read whole. `rounds` (STaR,
distill/rounds.py) is a no-op for `rounds: 1`; otherwise its last student is the one evaluated and exported.

    report = run(load_recipe("recipes/smol.yaml"), from_stage=None, to_stage=None)
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from distill import report, rounds
from distill.errors import DistillError
from distill.evaluate import harness as evaluate
from distill.export import gguf as export
from distill.filter import judging as trace_filter
from distill.filter.screen import problem_checks
from distill.problems.benchmarks import load_eval_problems
from distill.problems.mixture import build_problems, sources_key
from distill.recipe import Recipe, save_resolved
from distill.records import (
    Problem,
    WriterLock,
    fingerprint,
    load_problems,
    read_json,
    read_records,
    sha256_file,
    write_json,
    write_jsonl,
)
from distill.sample import sampler as sample
from distill.train import sft as train
from distill.train.checkpoints import run_key as train_key
from distill.train.templates import chat_template

STAGES = ["problems", "sample", "filter", "train", "rounds", "eval", "export"]
console = Console()


def file_sha(path: Path) -> str:
    return sha256_file(path)[:16] if Path(path).exists() else "missing"


def key_of(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Run:
    """Paths and the stage ledger of one recipe's run folder."""

    def __init__(self, recipe: Recipe):
        self.recipe = recipe
        self.dir = recipe.run_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ledger_path = self.dir / "stages.json"
        self.ledger = read_json(self.ledger_path) if self.ledger_path.exists() else {}

    def path(self, name: str) -> Path:
        return self.dir / name

    def fresh(self, stage: str, key: str) -> bool:
        entry = self.ledger.get(stage, {})
        return entry.get("key") == key and entry.get("done", False)

    def record(self, stage: str, key: str, seconds: float, **info) -> None:
        self.ledger[stage] = {"key": key, "done": True, "seconds": round(seconds, 1), **info}
        write_json(self.ledger_path, self.ledger)


def _stage_range(from_stage: str | None, to_stage: str | None) -> tuple[int, int]:
    for s in (from_stage, to_stage):
        if s is not None and s not in STAGES:
            raise DistillError(f"unknown stage {s!r}; stages are {', '.join(STAGES)}")
    return (STAGES.index(from_stage) if from_stage else 0, STAGES.index(to_stage) if to_stage else len(STAGES) - 1)


def run(recipe: Recipe, from_stage: str | None = None, to_stage: str | None = None) -> dict:
    first, last = _stage_range(from_stage, to_stage)
    r = Run(recipe)
    save_resolved(recipe, r.path("recipe.yaml"))
    if recipe.train.sft and first <= STAGES.index("train") <= last:
        from distill.train.config import check_sft_config

        check_sft_config(recipe)  # a misspelt train.sft key fails now, not after hours of sampling
    keys: dict[str, str] = {}
    ran: dict[str, bool] = {}

    def stage(name: str, key: str, work) -> None:
        keys[name] = key
        idx = STAGES.index(name)
        if idx > last:
            return
        if idx < first:
            if not r.fresh(name, key):
                raise DistillError(f"stage `{name}` is not up to date; run with --from {name} (or without --from)")
            return
        if r.fresh(name, key) and from_stage is None:
            console.print(f"[dim]{name}: inputs and settings unchanged, skipped[/]")
            ran[name] = False
            return
        console.rule(f"[bold]{name}")
        start = time.monotonic()
        info = work() or {}
        r.record(name, key, time.monotonic() - start, **info)
        ran[name] = True
        console.print(f"[green]{name}[/] done in {time.monotonic() - start:.1f}s")

    problems_path = r.path("problems.jsonl")
    traces_path = r.path("traces.jsonl")
    filter_dir = r.path("filter")
    student_dir = r.path("student")
    export_dir = Path("export") / recipe.export_name
    p = recipe.problems

    def do_problems():
        chosen, found = build_problems(p, problem_checks(recipe))
        write_json(r.path("problems_report.json"), found)
        sha = write_jsonl(problems_path, chosen)
        console.print(f"{len(chosen)} problems ({found['by_domain']}); skipped by source: "
                      + "; ".join(f"{s['name']} {s['skipped']}" for s in found["sources"]))
        return {"problems": len(chosen), "sha256": sha}  # read by the sample key: no re-read of the file

    data_key = sources_key(p) if p.sources else file_sha(Path(p.path))
    stage("problems", key_of(recipe.resolved()["problems"], data_key), do_problems)

    # Only what changes a trace (teacher model, prompt, sampling parameters) keys the traces: other
    # settings set the file aside. n and the problems (by content: ids are text hashes, so new,
    # dropped or reordered problems resume by id) only decide which traces this run uses and asks for.
    settings = sample.settings_key(recipe)
    problems_sha = r.ledger.get("problems", {}).get("sha256") or file_sha(problems_path)
    sample_key = key_of(settings, recipe.sampling.n, problems_sha)

    def do_sample():
        with WriterLock(traces_path, what="sampler"):  # a second `distill run` stops here, touching nothing
            r.ledger["sample"] = {"key": sample_key, "done": False}
            write_json(r.ledger_path, r.ledger)
            summary = sample.run(recipe, load_problems(problems_path), traces_path, set_aside=True)
        console.print(f"sampled {summary['sampled']} (already had {summary['already_done']}), "
                      f"{len(summary['failed'])} failed, {summary['completion_tokens_per_s']} tok/s")
        sample.check_failures(summary, recipe.sampling)
        return {"sampled": summary["sampled"], "settings": settings, "failed_share": summary["failed_share"]}

    stage("sample", sample_key, do_sample)

    def do_filter():
        # This run's traces only: those of its settings, problems and first n samples.
        chosen = None if recipe.teacher.backend == "dataset" else {
            q.id for q in read_records(problems_path, Problem) if isinstance(q, Problem)}
        selection = trace_filter.Selection(settings, chosen, None if chosen is None else recipe.sampling.n)
        rep = trace_filter.run(traces_path, filter_dir, recipe.filter, selection=selection)
        console.print(f"accepted {rep['accepted']} of {rep['input']} traces "
                      f"({rep['acceptance_rate']:.1%}); rejected by reason: {rep['by_reason']}")
        return {"accepted": rep["accepted"], "input": rep["input"]}

    # A fingerprint (size, mtime, sampled blocks), not a re-read of a traces file of many gigabytes.
    stage("filter", key_of(recipe.resolved()["filter"], fingerprint(traces_path), sample_key), do_filter)

    def do_train():
        summary = train.run(recipe, filter_dir / "accepted.jsonl", student_dir)
        losses = summary["losses"]
        if losses:
            console.print(f"loss {losses[0]:.3f} -> {losses[-1]:.3f} over {summary['steps']} steps")
        data = summary.get("data") or {}
        if data.get("dropped_over_max_length"):
            console.print(f"[yellow]{data['dropped_over_max_length']} of {data['examples']} traces were longer than "
                          f"train.max_length and were left out (never cut)[/]")
        return {"steps": summary["steps"], "dropped_over_max_length": data.get("dropped_over_max_length", 0),
                "eval_loss": summary.get("eval_loss")}

    accepted = filter_dir / "accepted.jsonl"
    # The checkpoints' own key: logging or saving cadence does not make a new student.
    stage("train", train_key(recipe, accepted) if accepted.exists() else key_of("missing"), do_train)

    def do_rounds():
        previous = r.ledger.get("rounds", {}).get("key")
        if previous != keys["rounds"]:  # another first student or other settings: its rounds are stale
            shutil.rmtree(r.path("rounds"), ignore_errors=True)
        r.ledger["rounds"] = {"key": keys["rounds"], "done": False}
        write_json(r.ledger_path, r.ledger)
        rows = rounds.run(recipe, r.dir, _round_problems(recipe, problems_path),
                          load_eval_problems(recipe.eval.problems, recipe.eval.split, recipe.eval.limit), _stop(recipe))
        return {"rounds": recipe.rounds.count, "trained_on": [row["trained_on"] for row in rows]}

    # A round scores its student on the eval split only: the base, budget curve and benchmarks are the eval stage's,
    # and changing them must not retrain the rounds' students.
    round_eval = {k: v for k, v in recipe.resolved()["eval"].items()
                  if k not in ("think_budgets", "budget_limit", "answer_tokens", "benchmarks", "base_limit")}
    stage("rounds", key_of(recipe.resolved()["rounds"], keys["train"], recipe.resolved()["sampling"],
                           recipe.resolved()["filter"], round_eval, keys["problems"]), do_rounds)
    final_student = rounds.student_of(r.dir, recipe.rounds.count)  # what eval and export take

    # The student's tokenizer is read only when eval is in range: `distill sample` must not need it.
    template = chat_template(_style(recipe), recipe.student.prefill_think) if STAGES.index("eval") <= last else None

    def do_eval():
        from distill.evaluate.registry import open_backend
        from distill.problems.benchmarks import load_benchmark

        e = recipe.eval
        stop = _stop(recipe)  # the template's turn end: a base model's EOS may be another token
        # The bundled eval split first, then each public benchmark (`eval.limit` caps each of them).
        suites = [("", load_eval_problems(e.problems, e.split, e.limit))]
        suites += [(f"@{b.split('@', 1)[0]}", load_benchmark(b, e.limit)) for b in e.benchmarks]
        results = {}
        base_todo = []
        for tag, probs in suites:  # the base model does not change between runs: its scores are kept
            summary_path = r.path(f"eval/base{tag}.summary.json")
            base_key = key_of(recipe.resolved()["eval"], recipe.student.model, template, tag)
            if summary_path.exists() and read_json(summary_path).get("key") == base_key:
                results["base" + tag] = read_json(summary_path)
            else:
                base_todo.append((tag, probs, base_key))
        if base_todo:
            with open_backend(recipe.student.model, e, template, stop_token=stop) as backend:
                for tag, probs, base_key in base_todo:
                    out = r.path(f"eval/base{tag}.jsonl")
                    results["base" + tag] = evaluate.run(backend, probs[: e.base_limit], e, out, label="base" + tag)
                    write_json(out.with_suffix(".summary.json"), {**results["base" + tag], "key": base_key})
        budgets_path = r.path("eval/budgets.json")
        with open_backend(str(final_student), e, stop_token=stop) as backend:
            for tag, probs in suites:
                results["student" + tag] = evaluate.run(backend, probs, e, r.path(f"eval/student{tag}.jsonl"),
                                                        label="student" + tag)
            if e.think_budgets:
                curve_problems = suites[0][1][: e.budget_limit]
                console.print(f"thinking budgets {e.think_budgets} (budget forcing) on {len(curve_problems)} "
                              "problems of the eval split")
                evaluate.budget_curve(backend, curve_problems, e, e.think_budgets, r.path("eval"), label="student")
            else:
                budgets_path.unlink(missing_ok=True)  # a curve from older settings would mislead
        ordered = {k: results[k] for k in ["base" + t for t, _ in suites] + ["student" + t for t, _ in suites]}
        write_json(r.path("eval/results.json"), ordered)
        report.build(r.dir, export_dir)  # figures exist before export, whose model card links them
        return {"base": results["base"]["pass@1"], "student": results["student"]["pass@1"]}

    stage("eval", key_of(recipe.resolved()["eval"], keys["rounds"], template), do_eval)

    def do_export():
        from distill.assets import is_embedded
        from distill.export import heldout
        from distill.problems.benchmarks import load_benchmark

        base = recipe.student.model.removeprefix("embedded:") if is_embedded(recipe.student.model) else recipe.student.model
        x, e = recipe.export, recipe.eval
        eval_split = load_eval_problems(e.problems, e.split, e.limit)
        if not x.eval_limit:
            eval_problems = None  # KL divergence only
        elif x.eval_benchmark:
            eval_problems = load_benchmark(x.eval_benchmark, x.eval_limit)
        else:
            eval_problems = eval_split[: x.eval_limit]
        # Held out from training: the student's eval-split completions for KL divergence, rejected teacher
        # traces for the importance matrix (enough text for its chunks, at ~8 characters a token).
        window = x.kld_ctx or min(recipe.train.max_length, 4096)
        rejected = heldout.rejected_pairs(filter_dir / "rejected.jsonl", max_chars=8 * window * x.imatrix_chunks)
        manifest = export.run(final_student, export_dir, recipe.export_name, x, base_model=base, recipe_name=recipe.name,
                              recipe_sha256=recipe.sha256(), stop_token=_stop(recipe),
                              datasets=[*_problem_datasets(recipe), f"traces from {recipe.teacher.model}"],
                              heldout=heldout.eval_pairs(r.path("eval/student.jsonl"), eval_split),
                              heldout_problems=eval_split, calibration=rejected,
                              calibration_problems=load_problems(problems_path)[:64] if problems_path.exists() else None,
                              eval_problems=eval_problems, eval_cfg=e, max_length=recipe.train.max_length,
                              force=x.force)
        for f in manifest["files"]:
            console.print(f"{f['file']}: {f['bytes'] / 2**20:.1f} MiB, KL divergence to F16 {f['kld']:.4f}, "
                          f"same top-1 {f['top1_agreement']:.1%}, pass@1 {f.get('pass@1')}"
                          + (f" ({f['pass@1_vs_f16']:+.1%} ± {f['pass@1_vs_f16_se']:.1%} vs F16, paired)"
                             if "pass@1_vs_f16" in f else "") + f", {f['tokens_per_s']} tok/s")
        return {"files": [f["file"] for f in manifest["files"]]}

    stage("export", key_of(recipe.resolved()["export"], keys["rounds"], recipe.sha256(),
                           fingerprint(r.path("eval/student.jsonl")),
                           fingerprint(filter_dir / "rejected.jsonl")), do_export)

    ledger = Run(recipe).ledger
    report_path = report.build(r.dir, export_dir)
    _print_summary(recipe, ledger, ran, export_dir, report_path)
    return ledger


def _round_problems(recipe: Recipe, problems_path: Path) -> list:
    """The train problems a STaR round's student answers: the teacher's (the problems stage's file), or
    the first `rounds.limit` of the same `problems` section (a student answers far more cheaply)."""
    if not recipe.rounds.limit:
        return load_problems(problems_path)
    wider = recipe.problems.model_copy(update={"limit": recipe.rounds.limit})
    return build_problems(wider, problem_checks(recipe))[0]


def _problem_datasets(recipe: Recipe) -> list[str]:
    p = recipe.problems
    return [p.path] if p.path else [s.dataset + (f":{s.config}" if s.config else "") for s in p.sources]


def _style(recipe: Recipe) -> str:
    if recipe.student.chat_template != "auto":
        return recipe.student.chat_template
    from transformers import AutoTokenizer

    from distill.assets import hf_folder
    from distill.train.templates import style_for

    return style_for(AutoTokenizer.from_pretrained(hf_folder(recipe.student.model)))


def _stop(recipe: Recipe) -> str:
    from distill.train.templates import stop_token

    return stop_token(_style(recipe))


def _print_summary(recipe: Recipe, ledger: dict, ran: dict, export_dir: Path, report_path: Path) -> None:
    """Time per stage, then (last, so it is what a user sees) accuracy by stage and the report's path."""
    from distill.runs import RunData, accuracy_rows

    times = Table(title="time per stage")
    times.add_column("stage")
    times.add_column("seconds", justify="right")
    times.add_column("this run")
    for s in STAGES:
        if s in ledger:
            times.add_row(s, f"{ledger[s].get('seconds', 0):.0f}", "ran" if ran.get(s) else "skipped")
    console.print(times)
    if (export_dir / "manifest.json").exists():
        console.print(f"exported: {export_dir}/ (manifest.json, Modelfile, README.md)")
    rows = accuracy_rows(RunData(recipe.run_dir, export_dir))
    if rows:
        e = recipe.eval
        table = Table(title=f"accuracy by stage: pass@1 on {e.problems} (split {e.split}), n={e.n}, "
                            f"temperature {e.temperature}")
        for col in ("stage", "model", "problems", "pass@1", "closed think", "mean tokens"):
            table.add_column(col, justify="left" if col in ("stage", "model") else "right")
        for row in rows:
            closed = row.get("closed_think_rate")
            table.add_row(row["stage"], row["label"], str(row.get("problems", "")), f"{row['pass@1']:.1%}",
                          f"{closed:.0%}" if isinstance(closed, (int, float)) else "–",
                          str(row.get("mean_completion_tokens", "")))
        console.print(table)
    console.print(f"report: {report_path} (figures in {report_path.parent / 'figures'}/, "
                  f"{report_path.with_suffix('.html')})")
