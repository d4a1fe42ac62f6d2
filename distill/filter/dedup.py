"""Duplicate problems and eval contamination, judged on problem text across all sources.

    dups = find_duplicates([(pid, text), ...], threshold=0.8)  # {duplicate_pid: kept_pid}
    index = ProblemIndex(db); index.add(pid, text)              # the same, one at a time, on disk
    deco = Decontaminator(load_eval_texts(["bundled", "MATH-500"]), n=8)
    deco.contaminated(text)                                        # True: an 8-gram is shared

Exact duplicates compare normalised text (NFKC, lower case, LaTeX `$` and punctuation dropped).
Near duplicates are MinHash-LSH candidates (datasketch's MinHash and band layout; character 5-gram
shingles, robust on short texts) confirmed by the exact Jaccard AND by the same numbers in the same
order: templated problems that differ only in their numbers have different answers, so they are
different problems. The index of kept problems lives in SQLite (a file at scale), not in memory.
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


def _h64(text: str) -> int:
    """A signed 64-bit hash (SQLite's INTEGER) of a text."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


def _shingles(norm: str) -> set[str]:
    return {norm[i:i + 5] for i in range(max(1, len(norm) - 4))}


class ProblemIndex:
    """Duplicate problems found on disk: `add(pid, text)` in input order returns the id of the
    first problem it duplicates (exact or near), else None and keeps it.

    Near duplicates must share their numbers, so problems are bucketed by their numbers; a bucket
    compares a new problem exactly with the ones it kept while it holds fewer than `exact_below`,
    then through MinHash LSH bands (large buckets: problems without numbers). The kept texts and the
    bands live in SQLite tables, not in memory, so a million problems cost disk, not RAM.

        index = ProblemIndex(sqlite3.connect(path), threshold=0.8)
        index.add("p2", "Mia has 14 shells ...")  # "p1" if p1 said the same"""

    def __init__(self, db, threshold: float = 0.8, num_perm: int = 128, exact_below: int = 16):
        from datasketch import MinHash, MinHashLSH

        self.db, self.threshold, self.exact_below = db, threshold, exact_below
        # LSH finds candidates only with some probability near its threshold: search lower, confirm exactly.
        lsh = MinHashLSH(threshold=max(0.3, threshold - 0.2), num_perm=num_perm)
        self.ranges = lsh.hashranges
        seed = MinHash(num_perm=num_perm)  # generating permutations is a MinHash's slow part: once
        self._new_minhash = lambda: MinHash(num_perm=num_perm, permutations=seed.permutations, scheme=seed.scheme)
        db.executescript("""
            CREATE TABLE IF NOT EXISTS p_exact(norm INTEGER PRIMARY KEY, pid TEXT);
            CREATE TABLE IF NOT EXISTS p_kept(pid TEXT PRIMARY KEY, rank INTEGER, bucket INTEGER, norm TEXT);
            CREATE INDEX IF NOT EXISTS p_kept_bucket ON p_kept(bucket, rank);
            CREATE TABLE IF NOT EXISTS p_bucket(bucket INTEGER PRIMARY KEY, size INTEGER, lsh INTEGER);
            CREATE TABLE IF NOT EXISTS p_band(bucket INTEGER, band INTEGER, pid TEXT);
            CREATE INDEX IF NOT EXISTS p_band_key ON p_band(bucket, band);""")
        self.rank = 0

    def _bands(self, shingles: set[str]) -> list[int]:
        mh = self._new_minhash()
        mh.update_batch([x.encode() for x in shingles])
        values = mh.hashvalues
        return [int.from_bytes(hashlib.blake2b(values[a:b].tobytes(), digest_size=8).digest(), "big", signed=True)
                for a, b in self.ranges]

    def _insert_bands(self, bucket: int, pid: str, shingles: set[str]) -> None:
        self.db.executemany("INSERT INTO p_band VALUES (?, ?, ?)", [(bucket, b, pid) for b in self._bands(shingles)])

    def add(self, pid: str, text: str) -> str | None:
        db = self.db
        norm = normalise(text)
        first = db.execute("SELECT pid FROM p_exact WHERE norm = ?", (_h64(norm),)).fetchone()
        if first:
            return first[0]
        db.execute("INSERT INTO p_exact VALUES (?, ?)", (_h64(norm), pid))
        shingles = _shingles(norm)
        bucket = _h64(" ".join(numbers(norm)))
        size, lsh = db.execute("SELECT size, lsh FROM p_bucket WHERE bucket = ?", (bucket,)).fetchone() or (0, 0)
        if not lsh and size >= self.exact_below:  # the bucket grew large: index what it kept so far
            for other, other_norm in db.execute("SELECT pid, norm FROM p_kept WHERE bucket = ?", (bucket,)).fetchall():
                self._insert_bands(bucket, other, _shingles(other_norm))
            lsh = 1
        if lsh:
            bands = self._bands(shingles)
            marks = ",".join("?" * len(bands))
            rows = db.execute(f"SELECT k.pid, k.norm FROM p_kept k WHERE k.pid IN (SELECT DISTINCT pid FROM p_band "
                              f"WHERE bucket = ? AND band IN ({marks})) ORDER BY k.rank", (bucket, *bands))
        else:
            rows = db.execute("SELECT pid, norm FROM p_kept WHERE bucket = ? ORDER BY rank", (bucket,))
        for other, other_norm in rows.fetchall():  # the first kept one wins
            o = _shingles(other_norm)
            if len(shingles & o) / len(shingles | o) >= self.threshold:
                return other
        db.execute("INSERT INTO p_kept VALUES (?, ?, ?, ?)", (pid, self.rank, bucket, norm))
        db.execute("INSERT OR REPLACE INTO p_bucket VALUES (?, ?, ?)", (bucket, size + 1, lsh))
        self.rank += 1
        if lsh:
            db.executemany("INSERT INTO p_band VALUES (?, ?, ?)", [(bucket, b, pid) for b in bands])
        return None


def find_duplicates(problems: list[tuple[str, str]], threshold: float = 0.8, num_perm: int = 128,
                    exact_below: int = 16) -> dict[str, str]:
    """{duplicate problem id: the id kept}; the first of a group in input order is kept."""
    import sqlite3

    index = ProblemIndex(sqlite3.connect(":memory:"), threshold, num_perm, exact_below)
    dups = {}
    for pid, text in problems:
        kept = index.add(pid, text)
        if kept is not None:
            dups[pid] = kept
    return dups
