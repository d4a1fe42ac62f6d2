"""What the trainer is built from: SFTConfig, LoRA/QLoRA configs, model load settings and the student.

Precision: a bf16 recipe trains under bf16 autocast with fp32 weights for the optimizer to update.
DeepSpeed keeps its own fp32 master copy of bf16 weights, so the model loads in bf16 there; without
DeepSpeed a full fine-tune loads the model in fp32 (16 bytes a parameter with Adam, as `distill plan`
counts), else updates smaller than bf16's 8-bit mantissa resolves round away. LoRA adapters are
fp32 (PEFT casts them) over a frozen bf16 or nf4 base.

    setup = trainer_setup(recipe, Path("student-checkpoints"))
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.assets import hf_folder
from distill.errors import RecipeError
from distill.recipe import Recipe
from distill.train.templates import apply_to, style_for

# Stop and turn tokens that a Llama-3.1 *base* model never trained (their embedding rows are noise):
# LoRA cannot reach embeddings, so these rows are made trainable or the student never learns to stop.
LLAMA3_TURN_TOKENS = ("<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>")


@dataclass
class TrainerSetup:
    """Everything the trainer is built from, derived from the recipe without touching weights."""

    args: Any  # trl.SFTConfig
    model_kwargs: dict = field(default_factory=dict)  # for AutoModelForCausalLM.from_pretrained
    peft_config: Any = None  # peft.LoraConfig
    quantization_config: Any = None  # transformers.BitsAndBytesConfig
    master_weights: str = "fp32"  # who holds the fp32 weights the optimizer updates
    cast_for_save: Any = None  # torch dtype to save the trained model in (fp32 master weights -> bf16)
    warning: str | None = None  # said loudly before training (e.g. packing without flash attention)


def available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def bf16_on(recipe: Recipe, cuda: bool | None = None) -> bool:
    """`train.bf16`, with `auto` answered by the hardware: a CUDA GPU that computes bf16, or a CPU with
    AVX512-BF16 or AMX (where bf16 autocast trains faster than fp32; on a CPU without them bf16 is
    emulated and slower)."""
    import torch

    t = recipe.train.bf16
    if t != "auto":
        return t
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if cuda:
        return torch.cuda.is_bf16_supported()
    cpu = torch.cpu
    return any(getattr(cpu, f, lambda: False)() for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def trainer_setup(recipe: Recipe, output_dir: str | Path, cuda: bool | None = None, tok=None) -> TrainerSetup:
    """SFTConfig, LoraConfig and BitsAndBytesConfig for the recipe on this machine, without loading
    the model. `cuda` overrides what the machine has (tests build the GPU recipes on CPU); `tok` is the
    student's tokenizer where it is loaded already (LoRA on a Llama-3 template needs its token ids)."""
    import torch

    from distill.train import launch

    t = recipe.train
    cuda = torch.cuda.is_available() if cuda is None else cuda
    stage = launch.deepspeed_stage(t)
    attn = t.attn_implementation
    if attn == "auto":
        attn = "flash_attention_2" if cuda and available("flash_attn") else "sdpa"
    setup = TrainerSetup(args=None, model_kwargs={"attn_implementation": attn})
    bf16 = bf16_on(recipe, cuda)
    half = torch.bfloat16 if bf16 else torch.float32
    if t.mode == "full" and stage == 0:
        setup.model_kwargs["dtype"] = torch.float32
        setup.master_weights = "fp32 model, bf16 autocast" if bf16 else "fp32"
        setup.cast_for_save = torch.bfloat16 if bf16 else None
    else:
        setup.model_kwargs["dtype"] = half
        setup.master_weights = ("DeepSpeed fp32 master copy" if t.mode == "full" else "fp32 LoRA adapters")
    if cuda and t.packing and attn not in ("flash_attention_2", "flash_attention_3"):
        setup.warning = (f"packing with attn_implementation={attn}: without flash-attention the packed rows use a "
                         "dense per-row attention mask (slower, more memory than `distill plan` assumes); "
                         "install flash-attn (`make setup` on a GPU machine) or set train.packing: false")
    if t.mode == "qlora":
        from transformers import BitsAndBytesConfig

        setup.quantization_config = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=half, bnb_4bit_quant_storage=half,
        )
        setup.model_kwargs["quantization_config"] = setup.quantization_config
    if t.mode in ("lora", "qlora"):
        from peft import LoraConfig

        setup.peft_config = LoraConfig(r=t.lora_r, lora_alpha=t.lora_alpha, lora_dropout=t.lora_dropout,
                                       target_modules=t.lora_target_modules, task_type="CAUSAL_LM",
                                       trainable_token_indices=untrained_turn_tokens(recipe, tok))
    kwargs = sft_kwargs(recipe, output_dir, cuda)
    if not torch.cuda.is_available():
        kwargs["use_cpu"] = True  # building a GPU recipe's config on a CPU machine (SFTConfig checks)
    setup.args = build_sft_config(kwargs, t.sft)
    return setup


def untrained_turn_tokens(recipe: Recipe, tok=None) -> dict[str, list[int]] | None:
    """For Llama-3 templates: the turn/stop token ids whose input and output rows LoRA must train."""
    if recipe.student.chat_template not in ("auto", "llama3"):
        return None
    if tok is None and recipe.student.chat_template == "llama3":
        from transformers import AutoTokenizer

        from distill.assets import llama3_tokenizer_dir

        tok = AutoTokenizer.from_pretrained(llama3_tokenizer_dir())  # every Llama-3 shares these ids
    tok = tok if tok is not None else load_tokenizer(recipe)
    if style_for(tok, recipe.student.chat_template) != "llama3":
        return None
    ids = sorted({tok.convert_tokens_to_ids(t) for t in LLAMA3_TURN_TOKENS})
    from distill.train.plan import model_shape

    try:
        tied = model_shape(recipe.student.model).tied
    except Exception:  # noqa: BLE001 - an unknown config: train the input rows, which always exist
        tied = True
    # Tied embeddings: PEFT ties the lm_head rows to the embedding adapter itself.
    return {"embed_tokens": ids} if tied else {"embed_tokens": ids, "lm_head": ids}


def check_sft_config(recipe: Recipe) -> None:
    """Build the recipe's SFTConfig (no model, no data): a bad `train.sft` key fails before sampling."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        build_sft_config(sft_kwargs(recipe, tmp, cuda=False), recipe.train.sft)


def build_sft_config(kwargs: dict, extra: dict):
    """SFTConfig from the recipe's own fields plus `train.sft`; problems name the recipe key."""
    from trl import SFTConfig

    known = {f.name for f in dataclasses.fields(SFTConfig)}
    problems = [(f"train.sft.{k}", f"set `train.{k}` instead of passing it through `train.sft`")
                for k in extra if k in kwargs]
    problems += [(f"train.sft.{k}", "not an SFTConfig field; check its spelling against TRL's SFTConfig")
                 for k in extra if k not in known and k not in kwargs]
    if problems:
        raise RecipeError("recipe", problems)
    try:
        return SFTConfig(**kwargs, **extra)
    except (ValueError, TypeError) as e:
        raise RecipeError("recipe", [("train.sft" if extra else "train", f"SFTConfig refused it: {e}")]) from None


def sft_kwargs(recipe: Recipe, output_dir: str | Path, cuda: bool) -> dict:
    """The SFTConfig arguments of a recipe on a machine with or without CUDA."""
    from trl import SFTConfig

    t = recipe.train
    liger = t.use_liger_kernel
    if liger == "auto":
        liger = cuda and available("liger_kernel")
    optim = t.optim
    if optim == "auto":
        # Paged optimiser states (QLoRA paper) absorb memory spikes from long traces; bnb pages need CUDA.
        optim = "paged_adamw_32bit" if t.mode == "qlora" and cuda else "adamw_torch"
    evaluate = t.eval_fraction > 0
    report_to = [] if t.report_to == ["none"] else list(t.report_to)
    return dict(
        output_dir=str(output_dir), learning_rate=t.learning_rate, num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps, per_device_train_batch_size=t.per_device_train_batch_size,
        per_device_eval_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps, max_length=t.max_length,
        packing=t.packing, packing_strategy=t.packing_strategy, padding_free=t.padding_free,
        lr_scheduler_type=t.lr_scheduler_type, lr_scheduler_kwargs=t.lr_scheduler_kwargs,
        # transformers 5 reads a warmup_steps float below 1 as a ratio of all steps (pinned >= 5).
        warmup_steps=t.warmup_ratio, weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm, optim=optim,
        **_checkpointing(SFTConfig, t.gradient_checkpointing), bf16=bf16_on(recipe, cuda),
        use_liger_kernel=liger, seed=t.seed, logging_steps=t.logging_steps,
        save_steps=t.save_steps, save_total_limit=t.save_total_limit,
        # Turned to "steps" by train.run once the held-out split is known to be non-empty.
        eval_strategy="no", eval_steps=(t.eval_steps or t.save_steps) if evaluate else None,
        # The prompt is masked by the `assistant_masks` column the data stage tokenized (data.py); TRL's own
        # flag only applies to untokenized conversations.
        assistant_only_loss=False, report_to=report_to,
        dataloader_num_workers=0, dataset_num_proc=t.dataset_num_proc, ddp_timeout=t.ddp_timeout,
        include_num_input_tokens_seen="non_padding", use_cpu=not cuda, disable_tqdm=False,
    )


def _checkpointing(config_cls, on: bool) -> dict:
    # transformers 5.x renamed gradient_checkpointing to activation_checkpointing; older keeps the old name.
    name = "activation_checkpointing" if any(f.name == "activation_checkpointing"
                                             for f in dataclasses.fields(config_cls)) else "gradient_checkpointing"
    # Non-reentrant checkpointing works with frozen (LoRA) inputs and with DeepSpeed ZeRO-3.
    return {name: on, f"{name}_kwargs": {"use_reentrant": False} if on else None}


def load_tokenizer(recipe: Recipe):
    """The student's tokenizer with the reasoning chat template and its stop token as EOS."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf_folder(recipe.student.model))
    apply_to(tok, style_for(tok, recipe.student.chat_template), recipe.student.prefill_think)
    return tok


def load_student(recipe: Recipe, for_training: bool = True, model_kwargs: dict | None = None):
    """Model and tokenizer of the recipe's student, with the reasoning chat template applied and the
    stop token written into generation_config (so `generate` and exported GGUFs stop on it)."""
    import torch
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(recipe)
    kwargs = dict(model_kwargs or {"dtype": torch.bfloat16 if bf16_on(recipe) else torch.float32})
    if not for_training:
        kwargs.pop("quantization_config", None)
    context = student_context(recipe)
    if context:
        from transformers import AutoConfig

        kwargs["config"] = AutoConfig.from_pretrained(hf_folder(recipe.student.model))
        apply_context(kwargs["config"], **context)
    model = AutoModelForCausalLM.from_pretrained(hf_folder(recipe.student.model), **kwargs)
    set_stop(model, tok)
    return model, tok


def student_context(recipe: Recipe) -> dict:
    s = recipe.student
    return {k: v for k, v in (("rope_theta", s.rope_theta), ("max_position_embeddings", s.max_position_embeddings))
            if v is not None}


def apply_context(config, rope_theta: float | None = None, max_position_embeddings: int | None = None) -> None:
    """Longer context for a short-context base, as open-r1 made open-r1/Qwen2.5-Math-7B-RoPE-300k
    (config only; training adapts the weights). The saved student keeps the new config, so the
    export and every runtime use the RoPE base it was trained at."""
    if rope_theta is not None:
        params = getattr(config, "rope_parameters", None)
        if isinstance(params, dict):  # transformers 5 keeps the RoPE base here; rope_theta is ignored
            config.rope_parameters = {**params, "rope_theta": float(rope_theta)}
        else:
            config.rope_theta = float(rope_theta)
    if max_position_embeddings is not None:
        config.max_position_embeddings = max_position_embeddings
        if getattr(config, "sliding_window", None):  # Qwen2.5-Math ships a 4k window (unused) with 4k positions
            config.sliding_window = max_position_embeddings


def set_stop(model, tok) -> None:
    # Base models ship generation_config with their pretraining EOS (<|endoftext|>, <|end_of_text|>);
    # the chat turn ends on the template's stop token, which is what generation must stop on.
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.config.eos_token_id = tok.eos_token_id
