"""Export: the student as GGUF F16 plus a quant ladder, each file proven before it is listed.

llama.cpp's converter writes F16 (`distill.hf_to_gguf`); `llama-imatrix` computes an importance
matrix from held-out teacher traces and `llama-quantize` makes the ladder with it (`quants`). Every
file is then proven (`prove`): it loads, its tokenizer is the HF one, it answers with a single BOS;
F16's logits agree with the HF model on held-out conversations; each quant's KL divergence and top-1
agreement against F16 come from `llama-perplexity` (`kld`), Q4_K_M's also without the importance
matrix; pass@1 per file runs through llama.cpp's server with parallel slots. An export that fails
the recipe's tolerances is refused (`force` keeps it, saying so in the manifest).

    manifest = run(Path("data/runs/smol/student"), Path("export/smol"), "smol", recipe.export,
                   base_model="HuggingFaceTB/SmolLM2-135M-Instruct", recipe_name="smol", recipe_sha256=sha,
                   heldout=pairs, eval_problems=problems, eval_cfg=recipe.eval)
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timezone
from pathlib import Path

from rich.progress import Progress

from distill import hf_to_gguf
from distill.errors import DistillError
from distill.evaluate.stats import paired_difference
from distill.export import heldout as held
from distill.export import prove
from distill.export.card import model_card
from distill.export.kld import KLDBase
from distill.export.ollama import write_files as write_ollama_files
from distill.export.quants import imatrix, quantize, uses_imatrix
from distill.hf_to_gguf import chat_template_of
from distill.recipe import EvalCfg, ExportCfg
from distill.records import Problem, write_json, write_text
from distill.train.templates import inference_template

IMATRIX_COMPARED = "Q4_K_M"  # measured with and without the importance matrix in every export
MIN_HELDOUT_TOKENS = 256  # two chunks of 128: llama-perplexity summarises 100 scored tokens at least


def merge_adapter(adapter_dir: Path, dest: Path) -> Path:
    """A PEFT (LoRA) adapter folder merged into its base model, saved as a plain HF folder."""
    import torch
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill.assets import hf_folder

    base_ref = PeftConfig.from_pretrained(adapter_dir).base_model_name_or_path
    try:
        base = AutoModelForCausalLM.from_pretrained(hf_folder(base_ref), dtype=torch.float32)
    except OSError as e:
        raise DistillError(f"the adapter in {adapter_dir} needs its base model {base_ref!r}, which did not load "
                           f"({e}); point base_model_name_or_path in adapter_config.json at a local folder") from None
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    has_tok = (adapter_dir / "tokenizer_config.json").exists()
    tok = AutoTokenizer.from_pretrained(adapter_dir if has_tok else hf_folder(base_ref))
    merged.save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest


def convert(model_dir: Path, out_file: Path, metadata: dict, license: str = "apache-2.0") -> None:
    """HF folder -> GGUF F16 carrying the folder's own chat template, ready for llama.cpp (without the
    training-only `{% generation %}` markers)."""
    template = chat_template_of(model_dir)
    if not template:
        raise DistillError(f"{model_dir} has no chat template; train with `distill train` or set one")
    hf_to_gguf.convert(model_dir, out_file, metadata, license, inference_template(template))


def run(model_dir: Path, out_dir: Path, name: str, cfg: ExportCfg, base_model: str, recipe_name: str,
        recipe_sha256: str, datasets: list[str] | None = None, stop_token: str | None = None,
        heldout: list[held.Pair] | None = None, calibration: list[held.Pair] | None = None,
        heldout_problems: list[Problem] | None = None, calibration_problems: list[Problem] | None = None,
        eval_problems: list[Problem] | None = None, eval_cfg: EvalCfg | None = None, max_length: int = 4096,
        force: bool = False) -> dict:
    """Write `<name>-F16.gguf` and `<name>-<QUANT>.gguf` into `out_dir` with manifest, Modelfile, card.

    heldout: (problem, completion) pairs for KL divergence and F16 parity, else the student's own
    completions on `heldout_problems` (generated from F16); calibration: pairs for the importance
    matrix, else the student's completions on `calibration_problems`; eval_problems + eval_cfg: pass@1
    per file; max_length: the student's training length (the KL divergence window's default)."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    is_adapter = (model_dir / "adapter_config.json").exists()
    if not (model_dir / "config.json").exists() and not is_adapter:
        raise DistillError(f"{model_dir} is not a trained student folder (no config.json or adapter_config.json); "
                           "run `distill train` first")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".work-") as tmp:
        work = Path(tmp)
        if is_adapter:
            model_dir = merge_adapter(model_dir, work / "merged")
        metadata = {"general.name": name, "general.basename": name,
                    "general.description": f"Reasoning student distilled with distill (recipe {recipe_name}, "
                                           f"sha256 {recipe_sha256})",
                    "general.base_models": [{"name": base_model}],
                    "general.datasets": [{"name": d} for d in (datasets or [])],
                    "general.tags": ["reasoning", "distill", f"recipe-sha256:{recipe_sha256[:16]}"]}
        f16 = out_dir / f"{name}-F16.gguf"
        convert(model_dir, f16, metadata, cfg.license)
        ctx = _Export(model_dir, out_dir, name, cfg, f16, work, eval_cfg or EvalCfg(problems="-"))
        manifest = ctx.prove_all(heldout, calibration, heldout_problems, calibration_problems, eval_problems,
                                 max_length)
    manifest = {"name": name, "base_model": base_model, "license": cfg.license, "datasets": datasets or [],
                "recipe": {"name": recipe_name, "sha256": recipe_sha256},
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "merged_adapter": is_adapter,
                "stop_token": stop_token or ctx.tok.eos_token, **manifest}
    return _finish(out_dir, manifest, force)


def _finish(out_dir: Path, manifest: dict, force: bool) -> dict:
    failures = manifest["failures"]
    if failures and not force:
        write_json(out_dir / "manifest.rejected.json", manifest)
        (out_dir / "manifest.json").unlink(missing_ok=True)  # it listed the files this export replaced
        raise DistillError("the export failed its checks (files kept for inspection in "
                           f"{out_dir}, measurements in manifest.rejected.json):\n  - " + "\n  - ".join(failures)
                           + "\nfix the cause, or keep it anyway with `distill export --force`")
    manifest["forced"] = bool(failures)
    (out_dir / "manifest.rejected.json").unlink(missing_ok=True)
    default = next((e["file"] for e in manifest["files"] if e["quant"] == "Q4_K_M"), manifest["files"][-1]["file"])
    write_ollama_files(out_dir, out_dir / default, manifest["stop_token"], manifest["prefill_think"])
    write_text(out_dir / "README.md", model_card(manifest))
    write_json(out_dir / "manifest.json", manifest)
    return manifest


class _Export:
    """One export's measurements, in the order they depend on each other."""

    def __init__(self, model_dir: Path, out_dir: Path, name: str, cfg: ExportCfg, f16: Path, work: Path,
                 eval_cfg: EvalCfg):
        from distill.evaluate.served import gpu_layers
        from distill.export import parity

        self.out_dir, self.name, self.cfg, self.f16, self.work, self.eval_cfg = out_dir, name, cfg, f16, work, eval_cfg
        self.model, self.tok = parity.load_hf(model_dir)
        self.gpu_layers = gpu_layers(cfg.gpu_layers)

    def _tokens(self, text: str) -> int:
        return len(self.tok(text, add_special_tokens=False)["input_ids"])

    def _window(self, n_tokens: int, ctx: int, chunks: int, what: str) -> tuple[int, int]:
        """Chunks of `ctx` tokens the text can fill (llama.cpp's tools need two at least)."""
        ctx = min(ctx, n_tokens // 2) // 16 * 16
        if ctx < MIN_HELDOUT_TOKENS // 2:
            raise DistillError(f"the {what} text has only {n_tokens} tokens; it needs {MIN_HELDOUT_TOKENS} at least "
                               "(give more eval problems, or a longer eval.max_tokens)")
        return ctx, min(chunks, n_tokens // ctx)

    def prove_all(self, heldout, calibration, heldout_problems, calibration_problems, eval_problems,
                  max_length: int) -> dict:
        cfg, tok = self.cfg, self.tok
        window = cfg.kld_ctx or min(max_length, 4096)
        # At most what the chunks read (8 characters a token is more than any tokenizer here needs): the
        # eval stage's rows can hold millions of tokens.
        most = 8 * window * cfg.kld_chunks
        source = "the eval split's problems with the student's completions"
        heldout = held.capped(list(heldout or []), most)
        if self._tokens(held.plain_text(heldout)) < MIN_HELDOUT_TOKENS and heldout_problems:
            # Too little to measure on (a short eval): the student's own longer answers, from F16.
            longer = self.eval_cfg.model_copy(update={"max_tokens": max(self.eval_cfg.max_tokens, 256)})
            heldout = held.capped(heldout + held.student_pairs(self.f16, heldout_problems[:64], longer), most)
            source += " (generated from F16 for this export)"
        if not heldout:
            raise DistillError("no held-out conversations to measure the quants on: run the eval stage first, or "
                               "give eval problems")
        plain = held.plain_text(heldout)
        text_file = self.work / "heldout.txt"
        text_file.write_text(plain, encoding="utf-8")
        ctx, chunks = self._window(self._tokens(plain), window, cfg.kld_chunks, "held-out")
        ladder = [q for q in cfg.quants if q != "F16"]
        with Progress() as progress:
            task = progress.add_task(f"export {self.name}", total=3 + 2 * len(ladder))
            imat = self._imatrix(calibration, calibration_problems, ctx) if cfg.imatrix and any(
                uses_imatrix(q) for q in ladder) else None
            progress.advance(task)
            files, reports = [("F16", self.f16)], {}
            for q in ladder:
                files.append((q, self.out_dir / f"{self.name}-{q}.gguf"))
                reports[q] = quantize(self.f16, files[-1][1], q, imat["path"] if imat and uses_imatrix(q) else None)
                progress.advance(task)
            entries = [prove.prove_file(path, q, tok) for q, path in files]
            for e in entries:
                e |= {"imatrix": reports.get(e["quant"], {}).get("imatrix", False),
                      "fallback_tensors": reports.get(e["quant"], {}).get("fallback", [])}
            f16_logits = prove.f16_logits(self.f16, self.model, tok, held.chat_texts(tok, heldout[:8]),
                                          n_ctx=min(ctx * 2, 4096))
            entries[0]["logit_parity"] = f16_logits
            progress.advance(task)
            base = KLDBase.compute(self.f16, text_file, self.work, ctx, chunks, self.gpu_layers)
            for e, (_, path) in zip(entries, files):
                e |= base.compare(path)
                progress.advance(task)
            comparison = self._imatrix_comparison(imat, base, entries)
            if eval_problems:
                rows = {q: [] for q, _ in files}
                for e, (q, path) in zip(entries, files):
                    e |= self._pass_at_1(path, eval_problems, rows[q])
                for e in entries[1:]:  # each quant against F16 on the same problems: the paired difference
                    diff, se = paired_difference(rows[e["quant"]], rows["F16"])
                    e |= {"pass@1_vs_f16": round(diff, 4), "pass@1_vs_f16_se": round(se, 4)}
            progress.advance(task)
        kld_info = {"source": source, "conversations": len(heldout), "ctx": ctx, "chunks": base.chunks,
                    "scored_tokens": base.scored_tokens, "noise_floor": entries[0]["kld"]}
        prefill = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                          add_generation_prompt=True).endswith("<think>\n")
        return {"prefill_think": prefill, "kld": kld_info,
                "imatrix": ({k: v for k, v in imat.items() if k != "path"} | {"comparison": comparison}) if imat else None,
                "files": entries, "failures": prove.judge(entries, f16_logits, cfg)}

    def _imatrix(self, calibration, calibration_problems, ctx: int) -> dict:
        source = "teacher traces the filter rejected (never trained on)"
        if not calibration:
            calibration = held.student_pairs(self.f16, calibration_problems or [], self.eval_cfg)
            source = "the student's completions on train-split problems (generated from F16 for this export)"
        if not calibration:
            raise DistillError("no calibration text for the importance matrix: give traces or problems, or set "
                               "`export.imatrix: false`")
        text = "".join(t + "\n" for t in held.chat_texts(self.tok, calibration))
        path = self.work / "calibration.txt"
        path.write_text(text, encoding="utf-8")
        ctx, chunks = self._window(self._tokens(text), ctx, self.cfg.imatrix_chunks, "calibration")
        out = self.out_dir / f"{self.name}.imatrix.gguf"
        info = imatrix(self.f16, path, out, ctx, chunks, self.gpu_layers)
        return {**info, "path": out, "source": source, "traces": len(calibration)}

    def _imatrix_comparison(self, imat: dict | None, base: KLDBase, entries: list[dict]) -> dict | None:
        """KL divergence of IMATRIX_COMPARED with and without the importance matrix (the shipped file
        is one of the two where the ladder has it; the other is made here and not kept)."""
        if imat is None:
            return None
        have = next((e for e in entries if e["quant"] == IMATRIX_COMPARED), None)
        res = {}
        for with_imatrix in (True, False):
            if have is not None and have["imatrix"] == with_imatrix:
                res["with" if with_imatrix else "without"] = have["kld"]
                continue
            tmp = self.work / f"compare-{IMATRIX_COMPARED}-{with_imatrix}.gguf"
            quantize(self.f16, tmp, IMATRIX_COMPARED, imat["path"] if with_imatrix else None)
            res["with" if with_imatrix else "without"] = base.compare(tmp)["kld"]
            tmp.unlink()
        return {"quant": IMATRIX_COMPARED, **res}

    def _pass_at_1(self, path: Path, problems: list[Problem], rows: list) -> dict:
        """pass@1 of one file, served; its per-sample rows go into `rows`."""
        from distill.evaluate import harness

        cfg = self.eval_cfg.model_copy(update={"n": self.cfg.eval_n}) if self.cfg.eval_n else self.eval_cfg
        res = harness.run(str(path), problems, cfg, show_progress=False, served=True, rows_out=rows)
        return {"eval_problems": res["problems"], "eval_samples": res["samples"], "served_tokens_per_s": res["tokens_per_s"],
                **{k: res[k] for k in ("pass@1", "pass@1_se", "truncation_rate", "mean_thinking_tokens")}}
