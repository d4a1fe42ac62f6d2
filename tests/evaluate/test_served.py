"""The served path's launchers: vLLM's command (vLLM cannot run here: no GPU, not installed; its command
is what we can check) and the engine each model gets. llama-server's served path runs for real in
test_evaluate.py."""

import sys
from pathlib import Path

import pytest

from distill.errors import DistillError
from distill.evaluate import served
from distill.evaluate.served import VLLMServer, engine_for
from distill.recipe import EvalCfg, load_recipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def _flag(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_vllm_command_is_data_parallel_with_the_recipes_length():
    server = VLLMServer("meta-llama/Llama-3.1-8B", "student", max_model_len=34816, data_parallel=8, seed=3,
                        max_num_seqs=256, extra_args=["--enforce-eager"])
    cmd = server.command()
    assert cmd[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    assert _flag(cmd, "--model") == "meta-llama/Llama-3.1-8B" and _flag(cmd, "--served-model-name") == "student"
    assert _flag(cmd, "--max-model-len") == "34816" and _flag(cmd, "--data-parallel-size") == "8"
    assert _flag(cmd, "--host") == "127.0.0.1" and _flag(cmd, "--port") == str(server.port)
    assert _flag(cmd, "--seed") == "3" and _flag(cmd, "--max-num-seqs") == "256"
    assert _flag(cmd, "--generation-config") == "vllm" and cmd[-1] == "--enforce-eager"
    assert server.url == f"http://127.0.0.1:{server.port}/v1"


def test_served_backend_builds_vllm_from_the_recipe(monkeypatch, tmp_path):
    """The GPU recipes' eval section reaches vLLM's flags: length from eval.n_ctx, one replica per GPU."""
    recipe = load_recipe(RECIPES / "8b.yaml")
    e = recipe.eval
    assert e.served and e.n_ctx and e.n_ctx >= e.max_tokens
    started = []
    monkeypatch.setattr(served, "engine_for", lambda model, engine: "vllm")
    monkeypatch.setattr(served, "visible_gpus", lambda: 4)
    monkeypatch.setattr(VLLMServer, "__enter__", lambda self: started.append(self.command()) or self)
    monkeypatch.setattr(VLLMServer, "__exit__", lambda self, *exc: None)
    import distill.evaluate.prompts as prompts

    monkeypatch.setattr(prompts.HFPrompts, "load", classmethod(lambda cls, ref, template=None: None))
    with served.ServedBackend(str(tmp_path), e) as backend:
        assert backend.url.startswith("http://127.0.0.1:")
    (cmd,) = started
    assert _flag(cmd, "--max-model-len") == str(e.n_ctx) and _flag(cmd, "--data-parallel-size") == "4"
    assert _flag(cmd, "--max-num-seqs") == str(e.batch_size)


def test_engine_choice(monkeypatch):
    assert engine_for("x.gguf") == "llamacpp"
    with pytest.raises(DistillError, match="GGUF"):
        engine_for("x.gguf", "vllm")
    monkeypatch.setattr(served.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DistillError, match="pip install vllm"):
        engine_for("student/", "vllm")
    assert engine_for("student/") == "llamacpp"  # no vLLM here: llama.cpp's server


def test_gpu_layers_only_with_a_gpu_build(monkeypatch):
    monkeypatch.setattr(served, "llama_cpp_has_gpu", lambda: False)
    assert served.gpu_layers("auto") is None and served.gpu_layers(12) == 12
    monkeypatch.setattr(served, "llama_cpp_has_gpu", lambda: True)
    assert served.gpu_layers("auto") == 999


def test_this_machines_llama_cpp_has_no_gpu():
    """setup's CPU build here (avx512 or avx2) lists no GPU device, so nothing is offloaded (a CUDA build lists CUDA0)."""
    served.llama_cpp_has_gpu.cache_clear()
    assert served.llama_cpp_has_gpu() is False


def test_recipe_rejects_unknown_engine():
    with pytest.raises(ValueError, match="engine"):
        EvalCfg(problems="-", engine="sglang")
