"""Memory and time plan for a training recipe: does it fit N GPUs of M GiB, and with what batch?

Per GPU, in bytes, with P parameters, N data-parallel GPUs, micro batch b and sequence s:
- weights, gradients, optimiser state as in the ZeRO paper (Rajbhandari et al. 2020): mixed-precision
  Adam keeps 2P (bf16 weights) + 2P (bf16 gradients) + 12P (fp32 master, m, v); ZeRO-2 shards the
  last two over N, ZeRO-3 all three, offload moves optimiser state (and parameters) to CPU RAM.
  Without DeepSpeed a full fine-tune keeps fp32 weights under bf16 autocast (distill/train/config.py):
  4P + 4P + 8P, the same 16 bytes a parameter.
  QLoRA (Dettmers et al. 2023): nf4 weights at 4 bits + double-quantised constants (0.127 bit)
  for the linear layers, embeddings and norms in bf16, and LoRA adapters trained in fp32 Adam.
- activations of a Llama/Qwen decoder layer with flash attention (Korthikanti et al. 2022, with a
  SwiGLU MLP): s*b*(10h + 2q + 4kv + 8i) bytes; with checkpointing only each layer's input (2sbh)
  is kept plus one layer being recomputed. No [tokens x vocab] logits: TRL 1.16's tiled LM head
  never materialises them (without it they would add 8*s*b*V bytes).
- 1 GiB for the CUDA context and allocator fragmentation.
Compute per trained token (Kaplan et al. 2020; Chowdhery et al. 2022, appendix B, for attention):
6 x (decoder linear + lm_head parameters) + 12 x layers x attention width x mean attended context;
MFU divides achieved FLOP/s by the GPU's dense bf16 peak (H100/H200 SXM: 989 TFLOP/s).
Published figures this is checked against (tests/test_plan.py): LLaMA-Factory's hardware table
(7B: full AMP 120 GB, full pure_bf16 60 GB, QLoRA-4bit 6 GB; 14B: QLoRA-4bit 12 GB).

    distill plan recipes/7b.yaml --gpus 8 --gpu-mem 80
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from distill.errors import DistillError
from distill.recipe import Recipe

GIB = 1024**3
OVERHEAD = 1 * GIB

# Published config.json values of the recipes' students (and of the models the published memory
# tables were measured on), so `plan` works without downloading anything. Local folders are read.
PUBLISHED_CONFIGS = {
    "Qwen/Qwen2.5-Math-1.5B": {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                                   "num_attention_heads": 12, "num_key_value_heads": 2, "vocab_size": 151936,
                                   "tie_word_embeddings": True},
    "Qwen/Qwen2.5-Math-7B": {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                                 "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
                                 "tie_word_embeddings": False},
    "Qwen/Qwen2.5-7B": {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                            "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
                            "tie_word_embeddings": False},
    "Qwen/Qwen2.5-14B": {"hidden_size": 5120, "intermediate_size": 13824, "num_hidden_layers": 48,
                             "num_attention_heads": 40, "num_key_value_heads": 8, "vocab_size": 152064,
                             "tie_word_embeddings": False},
    "meta-llama/Llama-3.1-8B": {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                                    "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
                                    "tie_word_embeddings": False},
    "meta-llama/Llama-2-7b-hf": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
                                     "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000,
                                     "tie_word_embeddings": False},
    "HuggingFaceTB/SmolLM2-135M-Instruct": {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                                                "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152,
                                                "tie_word_embeddings": True},
}
PUBLISHED_CONFIGS["embedded:smollm2-135m-instruct"] = PUBLISHED_CONFIGS["HuggingFaceTB/SmolLM2-135M-Instruct"]
H100_BF16_FLOPS = 989e12  # dense bf16 peak of an H100 SXM


@dataclass
class Shape:
    h: int  # hidden size
    i: int  # MLP intermediate size
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool

    @property
    def head_dim(self) -> int:
        return self.h // self.heads

    @property
    def linear_params(self) -> int:
        """Parameters of the decoder's linear layers (what LoRA targets and nf4 quantises)."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return self.layers * (self.h * q + 2 * self.h * kv + q * self.h + 3 * self.h * self.i)

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.h * (1 if self.tied else 2)

    @property
    def params(self) -> int:
        return self.linear_params + self.embedding_params + self.layers * 2 * self.h + self.h

    def lora_params(self, r: int) -> int:
        """LoRA on all linear layers: r * (in + out) for each."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        per_layer = (self.h + q) + 2 * (self.h + kv) + (q + self.h) + 2 * (self.h + self.i) + (self.i + self.h)
        return self.layers * r * per_layer


def model_shape(model: str) -> Shape:
    """The shape of a local HF folder (its config.json) or of a recipe model in PUBLISHED_CONFIGS."""
    path = Path(model) / "config.json"
    if path.is_file():
        cfg = json.loads(path.read_text())
        cfg = cfg.get("text_config", cfg)
    elif model in PUBLISHED_CONFIGS:
        cfg = PUBLISHED_CONFIGS[model]
    else:
        raise DistillError(f"no config for {model!r}: give a local model folder (with config.json) or one of "
                           f"{sorted(PUBLISHED_CONFIGS)}")
    return Shape(h=cfg["hidden_size"], i=cfg["intermediate_size"], layers=cfg["num_hidden_layers"],
                 heads=cfg["num_attention_heads"], kv_heads=cfg.get("num_key_value_heads") or cfg["num_attention_heads"],
                 vocab=cfg["vocab_size"], tied=bool(cfg.get("tie_word_embeddings", False)))


def activations(shape: Shape, batch: int, seq: int, checkpointing: bool, fused_ce: bool) -> int:
    h, i, s, b = shape.h, shape.i, seq, batch
    q, kv = shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    layer = s * b * (10 * h + 2 * q + 4 * kv + 8 * i)
    body = shape.layers * 2 * s * b * h + layer if checkpointing else shape.layers * layer
    logits = 0 if fused_ce else 8 * s * b * shape.vocab
    return body + logits


def flops_per_token(shape: Shape, context: float) -> float:
    """Training FLOPs per token (forward + backward, no recompute) at a mean attended context."""
    q = shape.heads * shape.head_dim
    return 6 * (shape.linear_params + shape.vocab * shape.h) + 12 * shape.layers * q * context


def state_bytes(shape: Shape, mode: str, stage: int, offload: bool, gpus: int, lora_r: int) -> dict:
    """Weights, gradients and optimiser state per GPU (bytes)."""
    p = shape.params
    if mode == "full":
        # Mixed precision keeps fp32 master weights and Adam moments: 16 bytes a parameter, whether
        # DeepSpeed holds them (bf16 weights + fp32 copy) or the model itself is fp32 under autocast.
        w, g, o = 2 * p, 2 * p, 12 * p
        if stage >= 2:
            g, o = g / gpus, o / gpus
        if stage >= 3:
            w = w / gpus
        if offload:
            o = 0
    else:
        a = shape.lora_params(lora_r)
        if mode == "qlora":
            nf4 = shape.linear_params * (4 + 0.127) / 8
            w = nf4 + 2 * (p - shape.linear_params)
        else:
            w = 2 * p
        w = w / gpus if stage >= 3 else w
        g, o = 4 * a, 12 * a  # adapters train in fp32 with Adam
    return {"weights": w, "gradients": g, "optimizer": o}


@dataclass
class Plan:
    model: str
    mode: str
    gpus: int
    gpu_mem_gib: float
    zero_stage: int
    offload: bool
    micro_batch: int
    seq: int
    params: int
    weights_gib: float
    gradients_gib: float
    optimizer_gib: float
    activations_gib: float
    activations_no_checkpointing_gib: float
    overhead_gib: float
    total_gib: float
    fits: bool
    suggestion: str
    tokens_per_s_per_gpu_at_40pct_mfu: float

    def to_dict(self) -> dict:
        return asdict(self)


def estimate(recipe: Recipe, gpus: int, gpu_mem_gib: float, micro_batch: int | None = None,
             seq: int | None = None) -> Plan:
    from distill.train import launch

    t = recipe.train
    if gpus < 1 or gpu_mem_gib <= 0:
        raise DistillError("--gpus must be >= 1 and --gpu-mem > 0 (GiB per GPU)")
    shape = model_shape(recipe.student.model)
    stage = launch.deepspeed_stage(t) if gpus > 1 or t.accelerate_config else 0
    offload = t.accelerate_config == "zero3_offload"
    b, s = micro_batch or t.per_device_train_batch_size, seq or t.max_length
    # TRL >= 1.16 scores tokens through a tiled LM head (trl.trainer.utils.add_fused_lm_head): the
    # [tokens x vocab] logits never exist whole, with or without Liger.
    fused = True

    def total(batch: int, ckpt: bool) -> tuple[dict, int]:
        st = state_bytes(shape, t.mode, stage, offload, gpus, t.lora_r)
        act = activations(shape, batch, s, ckpt, fused)
        return st, int(sum(st.values()) + act + OVERHEAD)

    st, need = total(b, t.gradient_checkpointing)
    budget = gpu_mem_gib * GIB
    fits = need <= budget
    global_batch = b * t.gradient_accumulation_steps * gpus
    suggestion = f"fits: micro batch {b} x accumulation {t.gradient_accumulation_steps} x {gpus} GPUs"
    if not fits:
        suggestion = _suggest(total, t, budget, gpus, global_batch, stage)
    elif b * 2 <= 64 and total(b * 2, t.gradient_checkpointing)[1] <= budget:
        best = b
        while best * 2 <= 64 and total(best * 2, t.gradient_checkpointing)[1] <= budget:
            best *= 2
        accum = max(1, math.ceil(global_batch / (best * gpus)))
        suggestion += (f"; micro batch {best} with accumulation {accum} also fits and keeps the global "
                       f"batch near {global_batch} sequences")
    flops = flops_per_token(shape, s / 2)  # full causal rows; packed short traces attend less
    return Plan(
        model=recipe.student.model, mode=t.mode, gpus=gpus, gpu_mem_gib=gpu_mem_gib, zero_stage=stage,
        offload=offload, micro_batch=b, seq=s, params=shape.params,
        weights_gib=st["weights"] / GIB, gradients_gib=st["gradients"] / GIB, optimizer_gib=st["optimizer"] / GIB,
        activations_gib=activations(shape, b, s, True, fused) / GIB,
        activations_no_checkpointing_gib=activations(shape, b, s, False, fused) / GIB,
        overhead_gib=OVERHEAD / GIB, total_gib=need / GIB, fits=fits, suggestion=suggestion,
        tokens_per_s_per_gpu_at_40pct_mfu=0.4 * H100_BF16_FLOPS / flops,
    )


def _suggest(total, t, budget: float, gpus: int, global_batch: int, stage: int) -> str:
    for ckpt in ([t.gradient_checkpointing] + ([True] if not t.gradient_checkpointing else [])):
        if total(1, ckpt)[1] <= budget:
            best = 1
            while best * 2 <= 64 and total(best * 2, ckpt)[1] <= budget:
                best *= 2
            accum = max(1, math.ceil(global_batch / (best * gpus)))
            fix = "" if ckpt == t.gradient_checkpointing else "turn on train.gradient_checkpointing and "
            return (f"does not fit; {fix}use train.per_device_train_batch_size={best} with "
                    f"train.gradient_accumulation_steps={accum} (global batch {best * accum * gpus})")
    options = []
    if t.mode == "full":
        if stage < 3:
            options.append("a higher ZeRO stage (train.accelerate_config: zero3)")
        elif t.accelerate_config != "zero3_offload":
            options.append("CPU offload (train.accelerate_config: zero3_offload)")
        options.append("QLoRA (train.mode: qlora)")
    options += ["more GPUs", "a shorter train.max_length"]
    return "does not fit even at micro batch 1 with checkpointing; try " + ", ".join(options)


def render(plan: Plan) -> str:
    rows = [
        (f"{plan.model}: {plan.params / 1e9:.2f}B parameters, mode {plan.mode}, {plan.gpus} GPU(s) x "
         f"{plan.gpu_mem_gib:g} GiB, ZeRO stage {plan.zero_stage}{' + offload' if plan.offload else ''}"),
        f"  micro batch {plan.micro_batch} x {plan.seq} tokens, per GPU:",
        f"  weights     {plan.weights_gib:8.1f} GiB",
        f"  gradients   {plan.gradients_gib:8.1f} GiB",
        f"  optimizer   {plan.optimizer_gib:8.1f} GiB",
        (f"  activations {plan.activations_gib:8.1f} GiB with checkpointing, "
         f"{plan.activations_no_checkpointing_gib:.1f} GiB without"),
        f"  overhead    {plan.overhead_gib:8.1f} GiB (CUDA context, fragmentation)",
        f"  total       {plan.total_gib:8.1f} GiB -> {'fits' if plan.fits else 'DOES NOT FIT'}",
        f"  {plan.suggestion}",
        f"  time: about {plan.tokens_per_s_per_gpu_at_40pct_mfu:,.0f} tokens/s per H100 at 40% MFU",
    ]
    return "\n".join(rows)
