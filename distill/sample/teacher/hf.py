"""A local transformers model as the teacher, with batched generation.

The sampler keeps `max_concurrent` requests open; this backend gathers whatever is waiting
(up to `teacher.batch_size`) into one left-padded `generate` call in a worker thread, so the
event loop keeps writing finished samples while the model runs.

    teacher:
      backend: hf
      model: Qwen/Qwen2.5-Math-7B-Instruct    # a hub name or a local HF folder
      batch_size: 16
"""

from __future__ import annotations

import asyncio

from distill.r1 import normalise_completion
from distill.sample.teacher.base import Generation, Teacher


class HFTeacher(Teacher):
    def __init__(self, model: str, batch_size: int = 8, n_threads: int | None = None):
        self.name = model
        self.model_ref = model
        self.batch_size = batch_size
        self.n_threads = n_threads
        self.batches: list[int] = []  # size of each generate call (visible in tests and logs)
        self.model = self.tok = None
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None

    def __enter__(self) -> HFTeacher:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from distill.assets import hf_folder, is_embedded

        ref = hf_folder(self.model_ref) if is_embedded(self.model_ref) else self.model_ref
        if self.n_threads:
            torch.set_num_threads(self.n_threads)
        self.tok = AutoTokenizer.from_pretrained(ref, padding_side="left")
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(ref, dtype=dtype).eval()
        if torch.cuda.is_available():
            self.model.to("cuda")
        return self

    def __exit__(self, *exc) -> None:
        self.model = self.tok = None

    async def open(self, max_concurrent: int, timeout_s: float) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._batcher())

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None

    async def generate(self, messages: list[dict], params: dict) -> Generation:
        if self._queue is None:
            await self.open(1, 0)
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((messages, params, future))
        return await future

    async def _batcher(self) -> None:
        while True:
            batch = [await self._queue.get()]
            await asyncio.sleep(0)  # let workers that are about to submit do so
            while len(batch) < self.batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                results = await asyncio.to_thread(self._generate_batch, [(m, p) for m, p, _ in batch])
            except Exception as e:  # one bad batch fails its requests, not the sampler
                for *_, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            for (*_, fut), gen in zip(batch, results):
                if not fut.done():
                    fut.set_result(gen)

    def _generate_batch(self, items: list[tuple[list[dict], dict]]) -> list[Generation]:
        import torch

        params = items[0][1]  # one recipe: every request shares the sampling settings
        prompts = [self.tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m, _ in items]
        enc = self.tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        # Batched sampling cannot take a seed per request; seeding each batch keeps a run repeatable.
        torch.manual_seed(params.get("seed", 0))
        temperature = params.get("temperature", 0.6)
        with torch.inference_mode():
            out = self.model.generate(
                **enc, max_new_tokens=params.get("max_tokens", 1024), do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                top_p=params.get("top_p", 1.0) if temperature > 0 else None, pad_token_id=self.tok.pad_token_id)
        self.batches.append(len(items))
        eos = {self.model.generation_config.eos_token_id} if isinstance(
            self.model.generation_config.eos_token_id, int) else set(self.model.generation_config.eos_token_id or [])
        eos.add(self.tok.eos_token_id)
        prompt_lens = enc["attention_mask"].sum(dim=1).tolist()
        gens = []
        for row, n_prompt in zip(out[:, enc["input_ids"].shape[1]:].tolist(), prompt_lens):
            n_new = next((i + 1 for i, t in enumerate(row) if t in eos), None)
            stopped = n_new is not None
            tokens = row[:n_new] if stopped else row  # a row that never stopped has no padding
            text = self.tok.decode(tokens, skip_special_tokens=True)
            gens.append(Generation(text=normalise_completion(text), finish_reason="stop" if stopped else "length",
                                   prompt_tokens=int(n_prompt), completion_tokens=len(tokens)))
        return gens
