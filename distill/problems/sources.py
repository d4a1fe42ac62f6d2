"""Reading one problem source with `datasets`: a hub name, a local dataset folder, or files.

The same `datasets.load_dataset(name, config, split=...)` call reads a hub repo and a local folder
kept in that repo's layout (file names, README configs), so an offline machine reads exactly what
the hub would give. Files (.parquet, .jsonl/.json, .arrow, .csv; globs work) go through the
matching packaged builder; a `save_to_disk` folder through `load_from_disk`. `streaming` reads a
large source lazily; `limit`ed sources are read in a seeded shuffled order.

    rows = open_rows(source_cfg, columns=("problem", "answer"), seed=0, shuffle=True)
"""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from distill.assets import cache_dir
from distill.errors import DistillError

BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".arrow": "arrow", ".csv": "csv"}
SHUFFLE_BUFFER = 10_000  # rows held by a streaming shuffle (datasets' approximate shuffle)


def _files(spec: str) -> list[str]:
    """Local files a spec names (a glob works); an `hf://datasets/ORG/NAME/path.jsonl` file is one
    file too (for repos whose loading script `datasets` no longer runs, e.g. codeparrot/apps)."""
    if spec.startswith("hf://"):
        return [spec] if Path(spec.split("*")[0]).suffix in BUILDERS or Path(spec).suffix in BUILDERS else []
    return sorted(glob.glob(spec)) if any(c in spec for c in "*?[") else ([spec] if Path(spec).is_file() else [])


def is_local(dataset: str) -> bool:
    return not dataset.startswith("hf://") and (Path(dataset).exists() or bool(_files(dataset)))


def fingerprint(dataset: str, revision: str | None = None) -> str:
    """What the problems stage key hashes for a source: a hub name with its revision, or each
    local file's path, size and modification time (cheap, and changes when a file does)."""
    if not is_local(dataset):
        return f"{dataset}@{revision or 'main'}"
    root = Path(dataset)
    paths = [Path(f) for f in _files(dataset)] or sorted(p for p in root.rglob("*") if p.is_file())
    h = hashlib.sha256()
    for p in paths:
        st = p.stat()
        h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def load(dataset: str, config: str | None, split: str, streaming: bool, revision: str | None = None):
    """A `datasets` Dataset (or IterableDataset) of one split, with a clear error on failure."""
    import datasets

    files = _files(dataset)
    try:
        if files:
            suffixes = {Path(f).suffix for f in files}
            if len(suffixes) != 1 or suffixes.pop() not in BUILDERS:
                raise DistillError(f"{dataset}: give files of one type ({', '.join(BUILDERS)})")
            return datasets.load_dataset(BUILDERS[Path(files[0]).suffix], data_files=files, split="train",
                                         streaming=streaming)
        if (Path(dataset) / "state.json").is_file() or (Path(dataset) / "dataset_dict.json").is_file():
            ds = datasets.load_from_disk(dataset)
            return ds[split] if isinstance(ds, datasets.DatasetDict) else ds
        # datasets names a local folder's cache by the folder's name alone, so two folders of the same
        # name collide (measured: a second `numina/` failed with the first one's split sizes). A cache
        # per content fingerprint keeps them apart and is still reused while the files are unchanged.
        cache = str(cache_dir() / "datasets" / fingerprint(dataset)) if Path(dataset).exists() else None
        return datasets.load_dataset(dataset, config, split=split, streaming=streaming, revision=revision,
                                     cache_dir=cache)
    except DistillError:
        raise
    except Exception as e:  # noqa: BLE001 - datasets raises many types for offline, gated or missing repos
        where = "local folder" if Path(dataset).exists() else "hub dataset"
        raise DistillError(
            f"cannot read {where} {dataset!r} (config {config}, split {split}): {type(e).__name__}: "
            f"{str(e)[:300]}. Where the hub is unreachable or the dataset gated, download it elsewhere "
            f"(`hf download {dataset} --repo-type dataset --local-dir DIR`) and set `dataset: DIR`") from None


def open_rows(dataset: str, config: str | None, split: str, streaming: bool, columns: Iterable[str],
              shuffle: bool, seed: int, revision: str | None = None, required: Iterable[str] = ()) -> Iterator[dict]:
    """The rows of a source as dicts of the wanted columns (those it has), shuffled if asked;
    a `required` column (one a filter reads) that the dataset lacks is an error, not an empty source."""
    ds = load(dataset, config, split, streaming, revision)
    have = list(ds.column_names or []) if ds.column_names is not None else None
    missing = sorted(set(required) - set(have)) if have is not None else []
    if missing:
        raise DistillError(f"{dataset}: no column {', '.join(missing)} to filter on (`where`); its columns are "
                           f"{', '.join(have)}")
    if have is not None:
        keep = [c for c in columns if c in have]
        if keep and len(keep) < len(have):
            ds = ds.select_columns(keep)  # never read a trace column (OpenR1-Math: ~50 kB a row)
    if shuffle:
        ds = ds.shuffle(seed=seed, buffer_size=SHUFFLE_BUFFER) if streaming else ds.shuffle(seed=seed)
    return iter(ds)
