"""The driver's MLflow writes as an ordered, durable journal, retried until the server has them.

Every write the sweep makes to MLflow is a *unit*: an operation name and JSON arguments that
name their run by its tags (sweep, configuration, fold), never by an MLflow run id, so a unit
can be recorded before its run exists on the server. A unit is appended to ``journal.jsonl``
in the spool folder (``<storage>/<sweep>/mlflow-spool``) before it is tried; a ``done`` line
follows once MLflow has it. One writer thread applies the units in order:

- a unit fails and the tracking server does not answer its health check: the server is down.
  The unit stays at the head of the queue, the writer waits (1 s, doubling to 60 s) and tries
  again; trials keep running and their units queue up behind it (files a unit uploads, such as
  a fold's model, are copied into the spool first, so the journal alone can replay it);
- a unit fails while the server answers: tried 3 times, then left in the journal as failed
  (replayable) and the writer moves on.

Units are idempotent (runs found by tags, metrics written with their original timestamps so a
repeat is stored once, models logged once, a FINISHED run never written again), so a unit
tried twice, replayed after the driver died, or replayed by ``python -m orchestration.replay``
leaves MLflow as one successful try would.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestration.redact import redact

log = logging.getLogger(__name__)

JOURNAL = "journal.jsonl"
META = "meta.json"
SPOOL_DIR = "mlflow-spool"


@dataclass
class Unit:
    seq: int
    op: str
    args: dict[str, Any]
    time_ms: int  # when it happened: the timestamp of its metrics and end times


class Spool:
    """An append-only journal of units in ``folder`` (created on first use)."""

    def __init__(self, folder: str | Path, meta: dict[str, str] | None = None) -> None:
        self.folder = Path(folder)
        self.path = self.folder / JOURNAL
        self._lock = threading.Lock()
        self._units: dict[int, Unit] = {}
        self._done: set[int] = set()
        self.failed: dict[int, str] = {}
        self._tail_checked = False  # only a writing Spool repairs the journal (readers never write)
        if meta is not None and not (self.folder / META).exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / META).write_text(json.dumps({k: redact(v) for k, v in meta.items()}, indent=1))
        if self.path.exists():
            self._read()

    @property
    def meta(self) -> dict[str, str]:
        path = self.folder / META
        if not path.exists():
            raise FileNotFoundError(f"{self.folder}: not an MLflow spool (no {META})")
        return json.loads(path.read_text())

    def _read(self) -> None:
        text = self.path.read_text()
        for number, line in enumerate(text.splitlines(), 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                # A line cut short by a kill mid-append: only the last line can be.
                log.warning("%s line %d is incomplete; ignored", self.path, number)
                continue
            if "unit" in record:
                unit = Unit(**record["unit"])
                self._units[unit.seq] = unit
            elif "done" in record:
                self._done.add(record["done"])
                self.failed.pop(record["done"], None)
            elif "failed" in record:
                self.failed[record["failed"]] = record.get("error", "")

    def _append(self, record: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, allow_nan=True) + "\n"
        with self._lock, self.path.open("a") as fh:
            if not self._tail_checked:  # a kill mid-append left a cut line: start a new one
                self._tail_checked = True
                if fh.tell() and not self._ends_with_newline():
                    line = "\n" + line
            fh.write(line)
            fh.flush()  # in the kernel: survives the driver being killed

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as fh:
            fh.seek(-1, 2)
            return fh.read(1) == b"\n"

    def add(self, op: str, args: dict[str, Any], time_ms: int | None = None) -> Unit:
        with self._lock:
            seq = max(self._units, default=0) + 1
            unit = Unit(seq, op, args, time_ms or int(time.time() * 1000))
            self._units[seq] = unit
        self._append({"unit": asdict(unit)})
        return unit

    def update(self, unit: Unit) -> None:
        """Record a changed unit (its files moved into the spool); the last record wins."""
        self._units[unit.seq] = unit
        self._append({"unit": asdict(unit)})

    def mark_done(self, seq: int) -> None:
        self._done.add(seq)
        self.failed.pop(seq, None)
        self._append({"done": seq})

    def mark_failed(self, seq: int, error: str) -> None:
        self.failed[seq] = error
        self._append({"failed": seq, "error": error[-2000:]})

    def pending(self) -> list[Unit]:
        """Units not stored in MLflow yet (failed ones included), in the order they happened."""
        return [self._units[s] for s in sorted(self._units) if s not in self._done]

    def compact(self) -> None:
        """Everything stored: drop the journal and the copied files (meta.json stays), so a
        sweep resumed many times does not carry every epoch it ever logged."""
        import shutil

        if self.pending():
            return
        with self._lock:
            self.path.unlink(missing_ok=True)
            shutil.rmtree(self.folder / "files", ignore_errors=True)
            self._units.clear()
            self._done.clear()
            self._tail_checked = False

    def files_dir(self, seq: int) -> Path:
        return self.folder / "files" / str(seq)


def fail_fast_http() -> None:
    """MLflow's HTTP client retries a refused connection for minutes by default (7 tries,
    backoff doubling from 2 s); the writer has its own backoff and keeps the sweep going
    meanwhile, so each call may fail fast. Set for this process unless the user set them."""
    import os

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")


def server_answers(tracking_uri: str, timeout_s: float = 5.0) -> bool:
    """Whether the tracking store can be reached: an HTTP server's /health, else yes (a local
    store's errors are not outages)."""
    if urllib.parse.urlparse(tracking_uri).scheme not in ("http", "https"):
        return True
    try:
        with urllib.request.urlopen(tracking_uri.rstrip("/") + "/health", timeout=timeout_s) as response:
            return response.status == 200
    except OSError:
        return False


@dataclass
class WriterReport:
    written: int = 0
    pending: int = 0
    failed: int = 0
    outages: list[tuple[float, float | None]] = field(default_factory=list)  # (down, back) monotonic
    spool: str = ""

    def lines(self, tracking_uri: str) -> list[str]:
        out = []
        recovered = [back - down for down, back in self.outages if back is not None]
        if recovered:
            out.append(f"MLflow: the tracking server was unreachable {len(recovered)} time(s) "
                       f"(longest {max(recovered):.0f} s); every write waited and was stored once it was back")
        if self.pending:
            out.append(f"MLflow: {redact(tracking_uri)} did not come back: {self.pending} write(s) "
                       f"({self.failed} failed while it answered) are spooled in {self.spool}\n"
                       f"replay them when it is back: python -m orchestration.replay {self.spool}"
                       f" [--tracking-uri URI]")
        return out


class TrackingWriter:
    """Applies spooled units in order on one thread, waiting out tracking outages."""

    def __init__(self, spool: Spool, tracking_uri: str, apply: Callable[[Unit], None],
                 prepare: Callable[[Unit, Path], Unit | None] | None = None, *,
                 first_backoff_s: float = 1.0, max_backoff_s: float = 60.0, tries: int = 3) -> None:
        self.spool = spool
        self.tracking_uri = tracking_uri
        self._apply = apply
        self._prepare = prepare  # copies a unit's files into the spool before it waits
        self.first_backoff_s, self.max_backoff_s, self.tries = first_backoff_s, max_backoff_s, tries
        self._queue: deque[Unit] = deque(spool.pending())
        self._cv = threading.Condition()
        self._deadline: float | None = None  # closing: give up waiting for the server then
        self._thread: threading.Thread | None = None
        self.report = WriterReport(spool=str(spool.folder))
        self.down_since: float | None = None

    def submit(self, op: str, args: dict[str, Any], time_ms: int | None = None) -> None:
        unit = self.spool.add(op, args, time_ms)
        with self._cv:
            self._queue.append(unit)
            self._cv.notify_all()
        self._start()

    def _start(self) -> None:
        with self._cv:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="mlflow-writer", daemon=True)
                self._thread.start()

    def drain(self, timeout_s: float | None = None) -> bool:
        """Wait until every queued unit is stored (or ``timeout_s`` passed); True if all are."""
        if self._queue:
            self._start()
        end = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cv:
            while self._queue and self._thread is not None and self._thread.is_alive():
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cv.wait(1.0 if left is None else min(left, 1.0))
            return not self._queue

    def close(self, grace_s: float) -> WriterReport:
        """Store what is queued, waiting up to ``grace_s`` for an unreachable server; what is
        still queued then stays in the spool for ``python -m orchestration.replay``."""
        with self._cv:
            self._deadline = time.monotonic() + grace_s
            self._cv.notify_all()
        self.drain()
        with self._cv:
            self._deadline = time.monotonic()
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self.report.pending = len(self.spool.pending())
        self.report.failed = len(self.spool.failed)
        self.spool.compact()
        if self.down_since is not None:
            self.report.outages.append((self.down_since, None))
        return self.report

    def _stopping(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            with self._cv:
                self._cv.notify_all()

    def _loop(self) -> None:
        delay, tries = self.first_backoff_s, 0
        while True:
            with self._cv:
                while not self._queue and not self._stopping():
                    self._cv.wait(1.0)
                if not self._queue or (self._stopping() and self.down_since is not None):
                    return  # nothing left, or closing and the server is still away
                unit = self._queue[0]
            try:
                self._apply(unit)
            except Exception as exc:
                if not server_answers(self.tracking_uri):
                    self._outage(unit, exc, delay)
                    delay = min(delay * 2, self.max_backoff_s)
                    continue
                tries += 1
                if tries < self.tries:
                    self._wait(delay)
                    continue
                log.exception("MLflow write %s (#%d) failed %d times; kept in %s", unit.op, unit.seq, tries, self.spool.path)
                self.spool.mark_failed(unit.seq, redact(repr(exc)))
            else:
                self.spool.mark_done(unit.seq)
                self.report.written += 1
                self._back()
            delay, tries = self.first_backoff_s, 0
            with self._cv:
                self._queue.popleft()
                self._cv.notify_all()

    def _back(self) -> None:
        if self.down_since is None:
            return
        self.report.outages.append((self.down_since, time.monotonic()))
        log.warning("MLflow at %s is back after %.0f s; writing the %d queued write(s)",
                    redact(self.tracking_uri), time.monotonic() - self.down_since, len(self._queue))
        self.down_since = None

    def _outage(self, unit: Unit, exc: Exception, delay: float) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning("MLflow at %s is unreachable (%s); trials go on, their writes are spooled in %s "
                        "and retried with backoff", redact(self.tracking_uri), type(exc).__name__, self.spool.folder)
        self._spool_files()
        self._wait(delay)

    def _spool_files(self) -> None:
        """Copy the files of every waiting unit into the spool (once per unit)."""
        if self._prepare is None:
            return
        with self._cv:
            waiting = [(i, u) for i, u in enumerate(self._queue) if "spooled" not in u.args]
        for index, unit in waiting:
            try:
                prepared = self._prepare(unit, self.spool.files_dir(unit.seq))
            except Exception:  # the unit keeps pointing at the originals: still replayable while they exist
                log.exception("could not copy the files of MLflow write #%d into %s", unit.seq, self.spool.folder)
                prepared = None
            if prepared is None:
                unit.args["spooled"] = False  # nothing to copy: not looked at again
                continue
            self.spool.update(prepared)
            with self._cv:
                if index < len(self._queue) and self._queue[index].seq == unit.seq:
                    self._queue[index] = prepared

    def _wait(self, seconds: float) -> None:
        """Sleep ``seconds``, or until the grace given to ``close`` is over."""
        end = time.monotonic() + seconds
        with self._cv:
            while not self._stopping():
                now = time.monotonic()
                left = end - now if self._deadline is None else min(end, self._deadline) - now
                if left <= 0:
                    return
                self._cv.wait(left)


_WRITERS: dict[str, TrackingWriter] = {}
_WRITERS_LOCK = threading.Lock()


def register_writer(writer: TrackingWriter) -> None:
    """The driver's writer for this spool: a callback Tune restored from its pickled state
    finds it here (one writer, one journal per sweep per process)."""
    with _WRITERS_LOCK:
        _WRITERS[str(writer.spool.folder)] = writer


def registered_writer(folder: str | Path | None) -> TrackingWriter | None:
    """The writer registered for ``folder``; for None, the only one registered, if one is."""
    with _WRITERS_LOCK:
        if folder is None:
            return next(iter(_WRITERS.values())) if len(_WRITERS) == 1 else None
        return _WRITERS.get(str(Path(folder)))


def unregister_writer(writer: TrackingWriter) -> None:
    with _WRITERS_LOCK:
        _WRITERS.pop(str(writer.spool.folder), None)
