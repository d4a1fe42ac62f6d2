"""The filter's index of judged traces, on disk: one small SQLite row per trace (line, problem,
sample, reasons, tokens, a hash of the completion), never its text. The per-problem steps run as
SQL over it, so memory stays flat from a thousand traces to a million: repeated samples and
completions (`duplicate`), problem-level marks (`duplicate`, `contaminated`), the teacher's pass
rate per problem with its band, and the k shortest correct traces per problem.

    with TraceIndex(out_dir) as index:
        index.add(line, trace, reasons, seconds, n_tokens, completion_hash)
        index.mark_problems(duplicate_of, contaminated)  # per problem, from dedup.py
        index.select(cfg)                                # duplicates, band, k shortest
        for line, error, reasons in index.verdicts(): ...
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path

ANSWER_REASONS = {"wrong_answer", "no_answer", "tests_failed", "unparseable_gold", "verify_timeout"}
# Reasons added over all traces, in the order they are appended to a trace's own reasons.
LATER = (("dup", "duplicate"), ("cont", "contaminated"), ("band", "pass_rate_out_of_band"),
         ("over", "over_per_problem_limit"))
GOOD = "error IS NULL AND reasons = '' AND dup = 0 AND cont = 0"


class TraceIndex:
    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.path: str | None = None
        self.db: sqlite3.Connection | None = None
        self._rows: list[tuple] = []

    def __enter__(self) -> TraceIndex:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        fd, self.path = tempfile.mkstemp(dir=self.out_dir, prefix=".index.", suffix=".sqlite")
        os.close(fd)
        self.db = sqlite3.connect(self.path)
        # A scratch file: no journal, no fsync; 16 MiB of page cache whatever the trace count (the
        # rest stays in the file, and in the OS page cache while memory is free).
        self.db.executescript("""
            PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -16384;
            PRAGMA temp_store = FILE;
            CREATE TABLE traces(line INTEGER PRIMARY KEY, pid TEXT, idx INTEGER, domain TEXT, reasons TEXT,
                                answer_ok INTEGER, seconds REAL, n_tokens INTEGER, chash INTEGER, settings TEXT,
                                error TEXT, dup INTEGER DEFAULT 0, cont INTEGER DEFAULT 0,
                                band INTEGER DEFAULT 0, over INTEGER DEFAULT 0);
            CREATE TABLE problems(pid TEXT PRIMARY KEY, rate REAL);
            CREATE TABLE seen(pid TEXT PRIMARY KEY);""")
        return self

    def __exit__(self, *exc) -> None:
        self.db.close()
        Path(self.path).unlink(missing_ok=True)

    # --- filling ------------------------------------------------------------------------------
    def add(self, line: int, trace, reasons: list[str], seconds: float, n_tokens: int, chash: int) -> None:
        prov = trace.provenance
        self._rows.append((line, trace.problem_id, trace.sample_index, trace.domain, ",".join(reasons),
                           int(not set(reasons) & ANSWER_REASONS), seconds, n_tokens, chash,
                           prov.settings if prov else None, None))
        if len(self._rows) >= 2048:
            self.flush()

    def first_time(self, problem_id: str) -> bool:
        """True the first time a problem is met (problem-level checks run once per problem)."""
        return self.db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (problem_id,)).rowcount == 1

    def add_malformed(self, line: int, error: str) -> None:
        self._rows.append((line, None, None, None, None, None, 0.0, None, None, None, error))

    def flush(self) -> None:
        self.db.executemany("INSERT INTO traces(line, pid, idx, domain, reasons, answer_ok, seconds, n_tokens, "
                            "chash, settings, error) VALUES (?,?,?,?,?,?,?,?,?,?,?)", self._rows)
        self._rows.clear()

    # --- over all traces ----------------------------------------------------------------------
    def mark_problems(self, duplicate_of: dict[str, str], contaminated: list[str]) -> None:
        """Problem-level marks: every trace of a duplicate or contaminated problem."""
        self.flush()
        db = self.db
        db.execute("CREATE TEMP TABLE marked(pid TEXT PRIMARY KEY, dup INTEGER, cont INTEGER)")
        rows = [(p, 1, 0) for p in duplicate_of] + [(p, 0, 1) for p in contaminated]
        db.executemany("INSERT INTO marked VALUES (?, ?, ?) ON CONFLICT(pid) DO UPDATE SET "
                       "dup = dup + excluded.dup, cont = cont + excluded.cont", rows)
        db.execute("CREATE INDEX t_pid ON traces(pid, idx, line)")
        db.execute("CREATE INDEX t_text ON traces(pid, chash, line)")
        # A repeated (problem, sample) key, a completion said before for the same problem (judged
        # clean so far), or a duplicate problem: `duplicate`, once.
        db.execute("""UPDATE traces SET dup = 1 WHERE error IS NULL AND (
            EXISTS (SELECT 1 FROM traces u WHERE u.pid = traces.pid AND u.idx = traces.idx AND u.line < traces.line
                    AND u.error IS NULL)
            OR (reasons = '' AND EXISTS (SELECT 1 FROM traces u WHERE u.pid = traces.pid AND u.chash = traces.chash
                                         AND u.line < traces.line AND u.error IS NULL))
            OR pid IN (SELECT pid FROM marked WHERE dup > 0))""")
        db.execute("UPDATE traces SET cont = 1 WHERE error IS NULL AND pid IN (SELECT pid FROM marked WHERE cont > 0)")

    def select(self, band: list[float] | None, max_per_problem: int | None) -> None:
        """The teacher's solve rate per problem (traces whose answer was right, whatever else was
        wrong); clean traces of problems outside `band` are marked; else all but the k shortest."""
        db = self.db
        db.execute("INSERT INTO problems SELECT pid, AVG(answer_ok) FROM traces WHERE error IS NULL GROUP BY pid")
        if band:
            db.execute(f"UPDATE traces SET band = 1 WHERE {GOOD} AND pid IN "
                       "(SELECT pid FROM problems WHERE NOT (rate >= ? AND rate <= ?))", band)
        if max_per_problem:
            db.execute(f"""UPDATE traces SET over = 1 WHERE line IN (SELECT line FROM (
                SELECT line, ROW_NUMBER() OVER (PARTITION BY pid ORDER BY n_tokens, idx, line) AS k
                FROM traces WHERE {GOOD} AND band = 0) WHERE k > ?)""", (max_per_problem,))
        db.execute("CREATE INDEX t_line_verdict ON traces(line, error, reasons)")

    # --- reading back -------------------------------------------------------------------------
    def verdicts(self):
        """(line, malformed error or None, final reasons) for every indexed line, in line order."""
        cur = self.db.execute("SELECT line, error, reasons, dup, cont, band, over FROM traces ORDER BY line")
        for line, error, reasons, *marks in cur:
            if error is not None:
                yield line, error, ["malformed_record"]
                continue
            out = reasons.split(",") if reasons else []
            yield line, None, out + [name for (_, name), on in zip(LATER, marks) if on]

    def query(self, sql: str, args: tuple = ()) -> list:
        return self.db.execute(sql, args).fetchall()
