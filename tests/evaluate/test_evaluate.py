"""Every backend scores a known completion the same way: tiny students trained here to say one
thing (tests/tiny_students.py) answer through transformers, llama.cpp in process, and llama.cpp's
server started by the served path, for a GGUF file and for an HF folder."""

import json

import pytest
from tiny_students import CHATML_COMPLETION, LLAMA3_RUN_ON, QUESTION, fit

from distill.errors import DistillError
from distill.evaluate import harness as evaluate
from distill.evaluate.registry import open_backend
from distill.evaluate.served import ServedBackend
from distill.recipe import EvalCfg
from distill.records import Problem
from distill.train.templates import chat_template

PROBLEMS = [Problem(id=f"q{i}", problem=f"What is {i} + 1?", answer=str(i + 1)) for i in range(3)]
# The same question twice: the parrot's one answer (2) is right for the first and wrong for the second.
RIGHT_AND_WRONG = [Problem(id="right", problem=QUESTION, answer="2"), Problem(id="wrong", problem=QUESTION, answer="3")]
GREEDY = EvalCfg(problems="-", temperature=0.0, max_tokens=48, batch_size=2, answer_tokens=16)


@pytest.fixture(scope="module")
def parrot(tmp_path_factory, smol_hf_dir):
    """A ChatML student (SmolLM2's tokenizer) that answers QUESTION with CHATML_COMPLETION, and its F16 GGUF."""
    from distill.hf_to_gguf import chat_template_of, convert
    from distill.train.templates import inference_template

    root = tmp_path_factory.mktemp("parrot")
    folder = fit(root / "hf", smol_hf_dir, "chatml", [(QUESTION, CHATML_COMPLETION)])
    gguf = root / "parrot-F16.gguf"
    convert(folder, gguf, {"general.name": "parrot"}, chat_template=inference_template(chat_template_of(folder)))
    return folder, gguf


@pytest.fixture(scope="module")
def run_on_base(tmp_path_factory):
    """A Llama-3 "base" (EOS <|end_of_text|>) that, given the distill template, ends its turn with
    <|eot_id|> and then invents the next turn: LLAMA3_RUN_ON."""
    from distill.assets import llama3_tokenizer_dir

    root = tmp_path_factory.mktemp("run-on")
    # lr 1e-2: with Llama-3's 128k vocabulary every step is slow; this converges in under 100 steps.
    return fit(root / "hf", llama3_tokenizer_dir(), "llama3", [(QUESTION, LLAMA3_RUN_ON)], eos="<|end_of_text|>",
               lr=1e-2)


def _check_known_answer(rows: list[dict], res: dict) -> None:
    assert [r["problem_id"] for r in rows] == ["right", "wrong"]
    assert rows[0]["completion"] == "<think>\n" + CHATML_COMPLETION.removesuffix("<|im_end|>")
    assert [r["correct"] for r in rows] == [True, False]
    assert res["pass@1"] == 0.5 and res["pass@1_se"] == 0.3536  # sqrt(0.5 * 0.5 / 2)
    assert res["truncation_rate"] == 0.0 and res["closed_think_rate"] == 1.0
    assert 0 < res["mean_thinking_tokens"] < res["mean_completion_tokens"]


def test_every_backend_scores_the_known_completion(parrot, tmp_path, monkeypatch):
    """HF in process, GGUF in process, and the served path for the GGUF and for the HF folder (converted
    to F16 once, then llama-server) agree on the same greedy problems."""
    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path / "cache"))
    folder, gguf = parrot
    texts = {}
    for label, model, served in [("hf", folder, False), ("gguf", gguf, False), ("served gguf", gguf, True),
                                 ("served hf", folder, True)]:
        rows: list[dict] = []
        res = evaluate.run(str(model), RIGHT_AND_WRONG, GREEDY, show_progress=False, served=served, rows_out=rows)
        _check_known_answer(rows, res)
        texts[label] = [r["completion"] for r in rows]
        assert [r["prompt_tokens"] for r in rows] == [rows[0]["prompt_tokens"]] * 2
    assert len({tuple(t) for t in texts.values()}) == 1
    assert list((tmp_path / "cache" / "served").glob("*.F16.gguf"))  # the HF folder was served as F16


def test_max_tokens_cuts_and_is_counted_as_truncation(parrot):
    folder, _ = parrot
    cfg = GREEDY.model_copy(update={"max_tokens": 3})
    rows: list[dict] = []
    res = evaluate.run(str(folder), RIGHT_AND_WRONG, cfg, show_progress=False, rows_out=rows)
    assert res["truncation_rate"] == 1.0 and res["pass@1"] == 0.0
    assert all(r["completion_tokens"] == 3 and r["finish_reason"] == "length" for r in rows)
    assert res["closed_think_rate"] == 0.0 and res["mean_thinking_tokens"] == 3  # cut while thinking


@pytest.mark.parametrize("backend", ["hf", "gguf"])
def test_base_model_stops_at_the_templates_turn_end(run_on_base, backend, tmp_path):
    """Without the template's stop token the base runs on into a turn it invented and is scored on that
    turn's answer; with it, it stops at <|eot_id|> after its own (right) answer."""
    model = str(run_on_base)
    if backend == "gguf":
        from distill.hf_to_gguf import convert

        model = str(tmp_path / "base-F16.gguf")
        convert(run_on_base, tmp_path / "base-F16.gguf", {"general.name": "base"})
    template = chat_template("llama3")
    cfg = GREEDY.model_copy(update={"max_tokens": 64})
    stopped, ran_on = [], []
    evaluate.run(model, RIGHT_AND_WRONG[:1], cfg, chat_template=template, stop_token="<|eot_id|>",
                 show_progress=False, rows_out=stopped)
    evaluate.run(model, RIGHT_AND_WRONG[:1], cfg, chat_template=template, show_progress=False, rows_out=ran_on)
    assert stopped[0]["correct"] and stopped[0]["completion"].endswith("\\boxed{2}")
    assert stopped[0]["finish_reason"] == "stop"
    if backend == "hf":  # transformers knows only the tokenizer's EOS: the invented turn is scored
        assert "\\boxed{7}" in ran_on[0]["completion"] and not ran_on[0]["correct"]
        assert ran_on[0]["completion_tokens"] > 2 * stopped[0]["completion_tokens"]


def test_llama3_prompt_has_one_bos_in_process_and_served(run_on_base, tmp_path):
    """The Llama-3 template writes <|begin_of_text|>; llama.cpp must not add a second one (its own count
    of prompt tokens equals our ids, which start with exactly one BOS): in process, on the served path
    (ids sent), and to a URL (text sent without the template's BOS; the server adds its one)."""
    from distill.hf_to_gguf import convert
    from distill.llamacpp import LlamaServer

    gguf = tmp_path / "l3-F16.gguf"
    convert(run_on_base, gguf, {"general.name": "l3"})
    cfg = GREEDY.model_copy(update={"max_tokens": 4})
    with LlamaServer(gguf, alias="l3", ctx=256) as server:  # a URL: the prompt goes as text
        for how in ("in process", "served", "url"):
            model, opts = (server.url, {"served_model": "l3", "tokenizer": str(gguf)}) if how == "url" \
                else (str(gguf), {"served": how == "served"})
            with open_backend(model, cfg, chat_template("llama3"), **opts) as backend:
                prompt = backend.render([{"role": "user", "content": QUESTION}])
                ids = backend.prompts.encode(prompt)
                (out,) = backend.complete([prompt], 4)
            assert prompt.startswith("<|begin_of_text|>") and ids[0] == 128000 and ids[1] != 128000
            assert out.prompt_tokens == len(ids), f"{how}: llama.cpp saw {out.prompt_tokens} tokens for {len(ids)}"


def test_budget_forcing_lets_a_short_thinker_stop_and_cuts_a_long_one(parrot):
    folder, _ = parrot
    curve = evaluate.budget_curve(str(folder), RIGHT_AND_WRONG, GREEDY, [2, 40], show_progress=False)
    cut, free = curve["points"]
    assert cut["forced_rate"] == 1.0 and cut["mean_thinking_tokens"] == 2
    # With room to think, the parrot closes its own block after its short reasoning and answers right.
    assert free["forced_rate"] == 0.0 and 2 < free["mean_thinking_tokens"] < 40
    assert free["pass@1"] == 0.5


def test_eval_hf_folder_rows_summary_and_budgets(tiny_llama_dir, tmp_path):
    cfg = EvalCfg(problems="p.jsonl", n=2, temperature=0.0, max_tokens=6, batch_size=4, answer_tokens=4)
    res = evaluate.run(str(tiny_llama_dir), PROBLEMS, cfg, tmp_path / "e.jsonl", show_progress=False)
    assert res["problems"] == 3 and res["n"] == 2 and res["samples"] == 6
    rows = (tmp_path / "e.jsonl").read_text().splitlines()
    assert len(rows) == 6 and (tmp_path / "e.summary.json").exists()
    curve = evaluate.budget_curve(str(tiny_llama_dir), PROBLEMS, cfg, [2, 5], tmp_path / "b", show_progress=False)
    assert (tmp_path / "b" / "budgets.json").exists() and (tmp_path / "b" / "budget-5.jsonl").exists()
    # The random tiny model never closes its own thinking: the budget cuts it, so a bigger budget thinks longer.
    assert [p["forced_rate"] for p in curve["points"]] == [1.0, 1.0]
    assert [p["mean_thinking_tokens"] for p in curve["points"]] == [2, 5]


def test_endpoint_without_tokenizer_uses_chat_and_refuses_budgets(llama_server, smol_hf_dir, tmp_path):
    cfg = EvalCfg(problems="p.jsonl", n=2, temperature=0.6, max_tokens=8, answer_tokens=6, batch_size=2)
    res = evaluate.run(llama_server.url, PROBLEMS[:2], cfg, tmp_path / "s.jsonl", show_progress=False,
                       served_model=llama_server.alias)
    assert res["problems"] == 2 and res["samples"] == 4 and res["mean_thinking_tokens"] is None
    with pytest.raises(DistillError, match="--tokenizer"):
        evaluate.budget_curve(llama_server.url, PROBLEMS[:1], cfg, [4], show_progress=False)
    curve = evaluate.budget_curve(llama_server.url, PROBLEMS[:1], cfg, [4], show_progress=False,
                                  served_model=llama_server.alias, tokenizer=str(smol_hf_dir))
    assert curve["points"][0]["mean_thinking_tokens"] <= 4


def test_unreachable_endpoint_is_a_clear_error():
    cfg = EvalCfg(problems="p.jsonl", max_tokens=4, timeout_s=2)
    with pytest.raises(DistillError, match="is the server up"):
        evaluate.run("http://127.0.0.1:9/v1", PROBLEMS[:1], cfg, show_progress=False)


def test_served_backend_needs_a_local_model(tmp_path):
    cfg = EvalCfg(problems="-", served=True, engine="llamacpp")
    with pytest.raises(DistillError, match="not a local HF folder"):
        with ServedBackend(str(tmp_path), cfg):
            pass


def test_cli_eval_served_prints_pass_at_1_with_its_standard_error(parrot, tmp_path):
    from typer.testing import CliRunner

    from distill.cli import app
    from distill.records import write_jsonl

    _, gguf = parrot
    write_jsonl(tmp_path / "p.jsonl", [p.model_dump() | {"split": "eval"} for p in RIGHT_AND_WRONG])
    out = CliRunner().invoke(app, ["eval", str(gguf), "--problems", str(tmp_path / "p.jsonl"), "--served",
                                   "--temperature", "0", "--max-tokens", "48", "--batch-size", "2",
                                   "--out", str(tmp_path / "r.jsonl")], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "50.0% ± 35.4%" in out.output  # pass@1 over 2 problems, binomial standard error
    summary = json.loads((tmp_path / "r.summary.json").read_text())
    assert summary["pass@1"] == 0.5 and summary["pass@1_se"] == 0.3536 and summary["truncation_rate"] == 0.0
