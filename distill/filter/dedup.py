"""Duplicate problems and eval contamination, judged on problem text across all sources.

    dups = find_duplicates([(pid, text), ...], threshold=0.8)  # {duplicate_pid: kept_pid}
    deco = Decontaminator(load_eval_texts(["bundled", "MATH-500"]), n=8)
    deco.contaminated(text)                                        # True: an 8-gram is shared

Exact duplicates compare normalised text (NFKC, lower case, LaTeX `$` and punctuation dropped).
Near duplicates are MinHash-LSH candidates (datasketch; character 5-gram shingles, robust on short texts) confirmed by the
Jaccard estimate AND by the same numbers in the same order: templated problems that differ only
in their numbers have different answers, so they are different problems.
Decontamination follows s1 and open-r1: any shared word n-gram (8 by default) with an eval
problem, after the same normalisation; a problem shorter than n words must match one whole. By default the shared n-gram must also come
with the same numbers (see `Decontaminator`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

from distill.errors import DistillError

# Hub names known to the filter; any other entry is a local JSONL file (optionally `path:split`)
# or a dataset folder/hub id that `datasets.load_dataset` reads.
EVAL_SETS = {
    "MATH-500": ("HuggingFaceH4/MATH-500", None, "test", "problem"),
    "AIME": ("AI-MO/aimo-validation-aime", None, "train", "problem"),
    "AIME24": ("HuggingFaceH4/aime_2024", None, "train", "problem"),
    "AIME25": ("yentinglin/aime_2025", None, "train", "problem"),
    "GPQA-Diamond": ("Idavidrein/gpqa", "gpqa_diamond", "train", "Question"),
}
BUNDLED = Path(__file__).resolve().parents[2] / "data" / "problems" / "arithmetic.jsonl"


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[$\\{}]", " ", text)
    text = re.sub(r"[^\w\s.]|(?<!\d)\.|\.(?!\d)", " ", text)  # keep decimal points, drop the rest
    return " ".join(text.split())


def numbers(text: str) -> tuple[str, ...]:
    return tuple(re.findall(r"\d+(?:\.\d+)?", text))


def _hash(gram: tuple[str, ...]) -> bytes:
    return hashlib.blake2b(" ".join(gram).encode(), digest_size=8).digest()


def word_ngrams(text: str, n: int) -> set[bytes]:
    words = normalise(text).split()
    return {_hash(tuple(words[i:i + n])) for i in range(len(words) - n + 1)}


class Decontaminator:
    """Eval n-grams in a hashed map; `contaminated(text)` is one lookup per n-gram.

    With `same_numbers` (the default) a shared n-gram counts only when the two problems use the
    same set of numbers: the bundled problems are templated, and "How many apples are there in
    all" with other numbers is another problem. `same_numbers=False` is open-r1's rule exactly."""

    def __init__(self, eval_texts: list[str], n: int = 8, same_numbers: bool = True):
        self.n, self.same_numbers = n, same_numbers
        self.grams: dict[bytes, list[int]] = {}
        self.short: dict[str, list[int]] = {}
        self.nums = [frozenset(numbers(normalise(t))) for t in eval_texts]
        for k, t in enumerate(eval_texts):
            words = normalise(t).split()
            if len(words) < n:
                self.short.setdefault(" ".join(words), []).append(k)
            for g in word_ngrams(t, n):
                self.grams.setdefault(g, []).append(k)

    def contaminated(self, text: str) -> bool:
        words = normalise(text).split()
        if len(words) < self.n:
            hits = self.short.get(" ".join(words), [])
        else:
            hits = [k for g in word_ngrams(text, self.n) for k in self.grams.get(g, ())]
        if not self.same_numbers:
            return bool(hits)
        mine = frozenset(numbers(normalise(text)))
        return any(self.nums[k] == mine for k in hits)


def _load_jsonl(path: Path, split: str | None) -> list[str]:
    from distill.records import Problem, load_problems

    problems: list[Problem] = load_problems(path)
    return [p.problem for p in problems if split is None or p.split == split]


def load_eval_texts(names: list[str]) -> tuple[list[str], dict[str, int]]:
    """Problem texts of each named eval set, and how many came from each name."""
    texts: list[str] = []
    counts: dict[str, int] = {}
    for name in names:
        if name == "bundled":
            got = _load_jsonl(BUNDLED, "eval")
        elif Path(name.rsplit(":", 1)[0]).suffix == ".jsonl":
            path, _, split = name.partition(".jsonl:")
            path = path if path.endswith(".jsonl") else path + ".jsonl"
            got = _load_jsonl(Path(path), split or None)
        else:
            got = _load_dataset(name)
        counts[name] = len(got)
        texts += got
    return texts, counts


def _load_dataset(name: str) -> list[str]:
    hub, config, split, column = EVAL_SETS.get(name, (name, None, "test", "problem"))
    try:
        import datasets

        ds = datasets.load_dataset(hub, config, split=split)
    except Exception as e:  # noqa: BLE001 -- offline hub, unknown name, missing column: the user must choose
        raise DistillError(
            f"eval set {name!r} ({hub}) could not be loaded for decontamination ({type(e).__name__}: "
            f"{str(e)[:200]}); give a local JSONL file or dataset folder instead, or drop it from "
            "`filter.decontaminate`") from None
    col = column if column in ds.column_names else next(
        (c for c in ("problem", "question", "Question", "prompt") if c in ds.column_names), None)
    if col is None:
        raise DistillError(f"eval set {name!r} has no problem column (columns: {ds.column_names})")
    return [str(x) for x in ds[col]]


def find_duplicates(problems: list[tuple[str, str]], threshold: float = 0.8, num_perm: int = 128,
                    exact_below: int = 16) -> dict[str, str]:
    """{duplicate problem id: the id kept}; the first of a group in input order is kept.

    Near duplicates must share their numbers, so problems are first bucketed by their numbers;
    a bucket compares new problems exactly with the ones it kept while it holds fewer than
    `exact_below`, then through a MinHash LSH index (large buckets: problems without numbers)."""
    dups: dict[str, str] = {}
    exact: dict[str, str] = {}
    buckets: dict[tuple[str, ...], _Bucket] = {}
    for pid, text in problems:
        norm = normalise(text)
        if norm in exact:
            dups[pid] = exact[norm]
            continue
        exact[norm] = pid
        shingles = {norm[i:i + 5] for i in range(max(1, len(norm) - 4))}
        bucket = buckets.setdefault(numbers(norm), _Bucket(threshold, num_perm, exact_below))
        kept = bucket.match(pid, shingles)
        if kept is not None:
            dups[pid] = kept
    return dups


class _Bucket:
    """Problems with the same numbers: exact Jaccard while small, MinHash LSH candidates when large."""

    def __init__(self, threshold: float, num_perm: int, exact_below: int):
        self.threshold, self.num_perm, self.exact_below = threshold, num_perm, exact_below
        self.kept: dict[str, set[str]] = {}
        self.rank: dict[str, int] = {}
        self.lsh = None
        self._perms = None

    def _minhash(self, shingles: set[str]):
        from datasketch import MinHash

        if self._perms is None:
            mh = MinHash(num_perm=self.num_perm)
            self._perms = (mh.permutations, mh.scheme)  # generating permutations is a MinHash's slow part
        else:
            mh = MinHash(num_perm=self.num_perm, permutations=self._perms[0], scheme=self._perms[1])
        mh.update_batch([x.encode() for x in shingles])
        return mh

    def match(self, pid: str, shingles: set[str]) -> str | None:
        if self.lsh is None and len(self.kept) >= self.exact_below:
            from datasketch import MinHashLSH

            # LSH finds candidates only with some probability near its threshold: search lower, confirm exactly.
            self.lsh = MinHashLSH(threshold=max(0.3, self.threshold - 0.2), num_perm=self.num_perm)
            for other, sh in self.kept.items():
                self.lsh.insert(other, self._minhash(sh))
        mh = self._minhash(shingles) if self.lsh is not None else None
        candidates = self.lsh.query(mh) if mh is not None else list(self.kept)
        for other in sorted(candidates, key=self.rank.__getitem__):  # the first kept one wins
            o = self.kept[other]
            if len(shingles & o) / len(shingles | o) >= self.threshold:
                return other
        self.kept[pid] = shingles
        self.rank[pid] = len(self.rank)
        if mh is not None:
            self.lsh.insert(pid, mh)
        return None
