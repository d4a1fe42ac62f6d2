"""An HF folder served by llama-server for evaluation and STaR sampling: converted once (reused while
the folder and template are unchanged), rendered with the template asked for, answering in parallel."""

import httpx

from distill.evaluate import harness as evaluate
from distill.evaluate.served import ServedBackend, served_gguf
from distill.r1 import student_messages
from distill.recipe import EvalCfg
from distill.records import Problem
from distill.train.templates import chat_template

PROBLEMS = [Problem(id=f"p{i}", problem=f"What is {i} + 2?", answer=str(i + 2)) for i in range(3)]


def test_served_folder_renders_the_given_template_and_evaluates(tiny_llama_dir, tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path / "cache"))
    template = chat_template("chatml", prefill_think=True)
    cfg = EvalCfg(problems="p.jsonl", n=2, temperature=0.0, max_tokens=6, batch_size=3, served=True)
    with ServedBackend(str(tiny_llama_dir), cfg, chat_template=template) as backend:
        base = backend.server.base
        assert httpx.get(base + "/props", timeout=10).json()["total_slots"] == 3
        # The GGUF carries the template we gave, not the folder's own: it renders as the HF tokenizer does.
        conversation = student_messages("What is 1 + 2?")
        rendered = httpx.post(base + "/apply-template", json={"messages": conversation}, timeout=10).json()
        tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
        tok.chat_template = template
        assert rendered["prompt"] == tok.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        assert rendered["prompt"].endswith("<think>\n")
        result = evaluate.run(backend, PROBLEMS, cfg, tmp_path / "eval.jsonl", show_progress=False)
    assert result["problems"] == 3 and result["mean_completion_tokens"] > 0
    assert len((tmp_path / "eval.jsonl").read_text().splitlines()) == 6


def test_conversion_is_reused_until_the_folder_or_template_changes(tiny_llama_dir, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path / "cache"))
    folder = shutil.copytree(tiny_llama_dir, tmp_path / "model")
    legacy = tmp_path / "cache/served/student-3252ec537aeb2016-F16.gguf"  # made before sources were recorded
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(b"GGUF")
    killed = legacy.parent / "student-0123456789abcdef.F16.gguf.part"  # a conversion killed halfway
    killed.write_bytes(b"GG")
    gguf = served_gguf(folder)
    assert not legacy.exists() and not killed.exists()
    made = gguf.stat().st_mtime_ns
    assert served_gguf(folder) == gguf and gguf.stat().st_mtime_ns == made  # same folder: not redone
    other = served_gguf(folder, chat_template("chatml", prefill_think=False))
    assert other != gguf and other.exists()  # another template: another conversion
    kept = served_gguf(shutil.copytree(tiny_llama_dir, tmp_path / "other-model"))
    (folder / "config.json").write_text((folder / "config.json").read_text() + "\n")
    again = served_gguf(folder)
    assert again != gguf and again.exists()  # the folder changed: converted again
    # ...and the two files made from its old state, which no run can ask for again, are gone; another
    # folder's file stays.
    assert not gguf.exists() and not other.exists() and kept.exists()
    shutil.rmtree(tmp_path / "other-model")
    other_again = served_gguf(folder, chat_template("chatml", prefill_think=False))
    assert not kept.exists()  # its folder is gone
    assert sorted(again.parent.glob("*.gguf")) == sorted([again, other_again])


def test_runs_converting_the_same_folder_at_once_convert_it_once(tiny_llama_dir, tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    import distill.hf_to_gguf

    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path / "cache"))
    calls = []
    real = distill.hf_to_gguf.convert
    monkeypatch.setattr(distill.hf_to_gguf, "convert", lambda *a, **k: calls.append(1) or real(*a, **k))
    with ThreadPoolExecutor(3) as pool:
        made = list(pool.map(lambda _: served_gguf(tiny_llama_dir), range(3)))
    assert len(set(made)) == 1 and made[0].exists() and len(calls) == 1
