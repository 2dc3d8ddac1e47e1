"""The results database: one SQLite file in WAL mode, committed per cell. The schema is versioned
(``PRAGMA user_version``) and the file is marked as wattgap's (``PRAGMA application_id``)."""

from __future__ import annotations

import gc
import json
import sqlite3
import time
from collections.abc import Callable, Container, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from wattgap.cells import ID_FIELDS, Cell
from wattgap.config import SweepConfig
from wattgap.errors import StoreError
from wattgap.machines import Environment, Machine
from wattgap.measure.protocol import PROBE
from wattgap.results import STATUSES, CellResult, Run, RunState
from wattgap.store import migrations
from wattgap.store.migrations import APPLICATION_ID, SCHEMA_VERSION
from wattgap.store.paths import existing_regular
from wattgap.text import visible

_INSERT_RESULT = "INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def _result_row(run_id: str, result: CellResult) -> tuple[Any, ...]:
    return (
        run_id,
        result.cell_id,
        result.status,
        result.reason,
        result.latency.median_s if result.latency else None,
        result.throughput_sps,
        result.schema_version,
        result.model_dump_json(),
        _now(),
        result.machine_id,
    )


T = TypeVar("T")
SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT_S = 30.0  # how long one statement waits for another writer's lock
WRITE_RETRY_PAUSES_S = (1.0, 2.0, 4.0, 8.0)  # then, between further tries of a write that met a lock
RECOVER = "the sqlite3 shell's .recover command saves what can still be read"
RESULTS_AT_ONCE = 64  # rows iter_results fetches at a time: a result with its raw samples is tens of KB


_INSERT_CELL = "INSERT INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def _cell_row(run_id: str, position: int, cell: Cell) -> tuple[Any, ...]:
    later = json.dumps(cell.later_fields(), sort_keys=True)
    return (run_id, cell.cell_id, position, *(getattr(cell, name) for name in ID_FIELDS), later)


def _identity(connection: sqlite3.Connection) -> tuple[int, int]:
    """The file's application id and how many tables it has (0 and 0: a blank SQLite file)."""
    application_id = int(connection.execute("PRAGMA application_id").fetchone()[0])
    tables = int(connection.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0])
    return application_id, tables


def _read_connection(uri: str) -> sqlite3.Connection:
    """A read-only connection; as immutable where SQLite cannot open the file otherwise (a read-only
    filesystem, on which it cannot create the WAL's shared-memory file)."""
    try:
        connection = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
        connection.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return connection
    except sqlite3.OperationalError as error:
        if "unable to open" not in str(error) and "readonly" not in str(error):
            raise
    return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, timeout=BUSY_TIMEOUT_S)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return status.st_dev, status.st_ino


def _why(error: Exception) -> str:
    return " ".join(str(error).split())[:200]


def _decoded(run_id: str, what: str, read: Callable[[], T]) -> T:
    """``read()``, or a StoreError naming the run and what of it could not be read (garbage in a JSON
    column, a value of the wrong type): one damaged row is reported as such, never as a traceback."""
    try:
        return read()
    except (TypeError, ValueError, KeyError) as error:  # pydantic's ValidationError is a ValueError
        raise StoreError(
            f"run {visible(run_id)}: {what} cannot be read ({_why(error)}); other runs are unaffected "
            f"(`wattgap delete {visible(run_id)}` removes this one)"
        ) from None


def _result(run_id: str, cell_id: str, text: str, machines: Container[str]) -> CellResult:
    """A stored result, which names no machine but those of ``machines`` (the run's, by id)."""

    def read() -> CellResult:
        result = CellResult.model_validate_json(text)
        if result.machine_id is not None and result.machine_id not in machines:
            raise ValueError(f"it names machine {visible(result.machine_id)}, which the file does not hold")
        return result

    return _decoded(run_id, f"the result of cell {visible(cell_id)}", read)


FREEZE_AT = 1_000  # results: a run this big is decoded with the cyclic collector off, and frozen after


@contextmanager
def _decoding(results: int) -> Iterator[None]:
    """Decoding a run's results makes some hundred objects for each, none of them part of a cycle. With
    the cyclic collector on, its passes walk every object decoded so far, and again in each pass of the
    command that reads the run afterwards: at 10,000 results they took 0.7-1.5 s of commands of 3-4 s.
    So the collector is off for the decode (and on again after, as it was found); after a run of
    FREEZE_AT results or more, every object alive, the run with them, is moved to its permanent
    generation (``gc.freeze``), which it never walks again (reference counting still frees the run when
    it is dropped); a collection comes first, so that no garbage of the caller's is frozen with it."""
    many = results >= FREEZE_AT
    if many:
        gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if many:
            gc.freeze()
        if enabled:
            gc.enable()


def _cell(row: tuple[Any, ...]) -> Cell:
    model, workload, backend, device, precision, batch_size, threads, later = row
    return Cell(
        model=model,
        workload=workload,
        backend=backend,
        device=device,
        precision=precision,
        batch_size=batch_size,
        threads=threads,
        **_mapping(json.loads(later)),
    )


def _mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected a JSON object, found {type(value).__name__}")
    return value


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError(f"expected a JSON list of strings, found {value!r:.60}")
    return value


class DatabaseGone(StoreError):
    """The database file was removed or replaced while a writer held it open."""


class Store:
    """A wattgap database. ``Store.open`` for writing (creates the file), ``Store.open_readonly`` for
    commands that only read (never creates anything)."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self.connection = connection
        self.path = path
        self.file_id: tuple[int, int] | None = None  # (device, inode) of the file a writer opened
        self.damaged: list[str] = []  # what a listing passed over, one line each
        version = migrations.version_of(connection)
        self.tags = migrations.tags_column(version)
        self.later_fields = migrations.later_fields_column(version)
        self.has_repeats = migrations.has_repeats(version)
        self.has_probes = migrations.has_probes(version)
        self.has_machines = migrations.has_machines(version)

    @classmethod
    def open(cls, path: str | Path, create: bool = True) -> Store:
        """For writing: creates the database when the file is new, empty, or a blank SQLite file left by
        a creation that was interrupted; upgrades an older one. Creating is one immediate transaction, so
        two processes creating the same file at once end with one schema. With ``create`` False (resuming,
        deleting: there must be something there) a missing or empty file is refused and nothing is made."""
        file = Path(path)
        cls.check_target(file, create)
        try:
            connection = sqlite3.connect(file, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            connection.execute("BEGIN IMMEDIATE")  # the one writer that decides whether to create
            try:
                application_id, tables = _identity(connection)
                if application_id == 0 and tables == 0:
                    migrations.create(connection)
                elif application_id == APPLICATION_ID:
                    migrations.upgrade(connection)
                else:
                    raise StoreError(f"--db: {str(file)!r} is a SQLite file but not a wattgap database")
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA foreign_keys=ON")
            connection.isolation_level = "DEFERRED"  # back to transactions opened by each `with connection`
        except sqlite3.Error as error:
            raise StoreError(f"--db: cannot open {str(file)!r} for writing: {error}") from None
        store = cls(connection, file)
        store.file_id = _file_id(file)
        return store

    @classmethod
    def check_target(cls, file: Path, create: bool = True) -> None:
        """Refuse a path ``open`` would refuse before it writes anything (a missing folder, a folder, a link
        or special file, a file that is not a wattgap database or is of a newer schema; with ``create``
        False, a missing or empty file): a run calls it before it starts any process."""
        if not file.parent.is_dir():
            raise StoreError(f"--db: folder {str(file.parent)!r} does not exist; create it or choose another path")
        if file.is_dir():
            raise StoreError(f"--db: {str(file)!r} is a folder; give a file path such as {str(file / 'wattgap.db')!r}")
        existing = existing_regular(file, "--db", follow_links=True)
        if not create and (existing is None or existing.st_size == 0):
            raise StoreError(f"--db: {str(file)!r} does not exist; run `wattgap run` first or pass --db PATH")
        if existing is not None and existing.st_size > 0:
            cls._check(file, blank_ok=True).close()  # refuses what is not ours before anything is written

    @classmethod
    def open_readonly(cls, path: str | Path) -> Store:
        """For reading, never creating or changing anything. On a read-only filesystem (where SQLite
        cannot create the WAL's shared-memory file) the file is read as immutable."""
        file = Path(path)
        if existing_regular(file, "--db", follow_links=True) is None:
            raise StoreError(f"--db: {str(file)!r} does not exist; run `wattgap run` first or pass --db PATH")
        return cls(cls._check(file), file)

    @staticmethod
    def _check(file: Path, blank_ok: bool = False) -> sqlite3.Connection:
        """A read-only connection to ``file``, refusing files that are not SQLite, not wattgap's (a blank
        SQLite file passes with ``blank_ok``), of a newer schema, or damaged (said as damage)."""
        with file.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
        if header != SQLITE_HEADER:
            raise StoreError(f"--db: {str(file)!r} is not a wattgap database (not a SQLite file)")
        try:
            connection = _read_connection(file.resolve().as_uri())
            application_id, tables = _identity(connection)
            version = migrations.version_of(connection)
        except sqlite3.OperationalError as error:
            raise StoreError(f"--db: cannot read {str(file)!r}: {error}") from None
        except sqlite3.DatabaseError as error:
            raise StoreError(f"--db: {str(file)!r} is a damaged SQLite file ({error}); {RECOVER}") from None
        if blank_ok and application_id == 0 and tables == 0:
            return connection
        if application_id != APPLICATION_ID:
            connection.close()
            raise StoreError(f"--db: {str(file)!r} is a SQLite file but not a wattgap database")
        if version > SCHEMA_VERSION:
            connection.close()
            raise StoreError(
                f"--db: {str(file)!r} has schema version {version}, newer than this wattgap reads "
                f"({SCHEMA_VERSION}); upgrade wattgap"
            )
        return connection

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # writing
    def create_run(
        self,
        run_id: str,
        config: SweepConfig,
        environment: Environment,
        cells: list[Cell],
        skipped: dict[str, str],
        version: str,
        tags: list[str] | None = None,
    ) -> None:
        """The run, its planned cells and the results of its skipped cells, in one transaction."""
        self.check_same_file()
        with self.connection:
            self.connection.execute(
                "INSERT INTO runs (run_id, name, created_at, finished_at, status, wattgap_version, config_json, "
                "environment_json, tags_json) VALUES (?, ?, ?, NULL, 'running', ?, ?, ?, ?)",
                (
                    run_id,
                    config.name,
                    _now(),
                    version,
                    config.model_dump_json(),
                    environment.model_dump_json(),
                    json.dumps(tags or []),
                ),
            )
            self.connection.executemany(_INSERT_CELL, [_cell_row(run_id, i, c) for i, c in enumerate(cells)])
            self.connection.executemany(
                _INSERT_RESULT,
                [
                    _result_row(run_id, CellResult(cell=c, status="skipped", reason=skipped[c.cell_id]))
                    for c in cells
                    if c.cell_id in skipped
                ],
            )

    def add_machine(self, machine: Machine) -> str:
        """Store a machine that runs cells (once: its id is the hash of its facts); its id."""
        machine_id = machine.machine_id()
        self._write(
            f"machine {visible(machine.hostname)}",
            "INSERT OR IGNORE INTO machines VALUES (?, ?, ?)",
            (machine_id, machine.model_dump_json(), _now()),
        )
        return machine_id

    def add_cell(self, run_id: str, cell: Cell) -> None:
        """Append a cell to a stored run (a batch search plans its next probe from the last one's result)."""
        (position,) = self.connection.execute(
            "SELECT COALESCE(MAX(position) + 1, 0) FROM cells WHERE run_id = ?", (run_id,)
        ).fetchone()
        self._write(f"cell {cell.label}", _INSERT_CELL, _cell_row(run_id, position, cell))

    def store_result(self, run_id: str, result: CellResult) -> None:
        """Commit one cell's result at once: a killed sweep keeps every finished cell. A stored result is
        never replaced: a second result for the same cell of the same run is refused."""
        try:
            self._write(f"the result of cell {result.cell.label}", _INSERT_RESULT, _result_row(run_id, result))
        except sqlite3.IntegrityError:
            stored = self.connection.execute(
                "SELECT status, stored_at FROM results WHERE run_id = ? AND cell_id = ?", (run_id, result.cell_id)
            ).fetchone()
            if stored is None:  # not a duplicate: a cell this run does not have
                raise StoreError(f"run {run_id} has no cell {result.cell_id} ({result.cell.label})") from None
            raise StoreError(
                f"run {run_id} already has a result for cell {result.cell_id} ({result.cell.label}): "
                f"{stored[0]}, stored at {stored[1]}; stored results are never replaced"
            ) from None

    def store_repeat(self, run_id: str, result: CellResult) -> None:
        """Commit one process of a repeated cell (``result.repeat`` says which) as it ends; never replaced."""
        what = f"repeat {(result.repeat or 0) + 1} of cell {result.cell.label}"
        row = (run_id, result.cell_id, result.repeat or 0, result.status, result.model_dump_json(), _now())
        self._insert_once(run_id, what, "INSERT INTO repeats VALUES (?, ?, ?, ?, ?, ?)", row)

    def _insert_once(self, run_id: str, what: str, statement: str, row: tuple[Any, ...]) -> None:
        """``statement`` committed (a process's outcome, ``what``), refused when its key is already stored."""
        try:
            self._write(what, statement, row)
        except sqlite3.IntegrityError:
            raise StoreError(
                f"run {run_id} already has {what}, or has no such cell; stored results are never replaced"
            ) from None

    def load_repeats(self, run_id: str) -> dict[str, list[CellResult]]:
        """The stored processes of ``run_id``'s repeated cells, by cell id, in repeat order."""
        if not self.has_repeats:
            return {}

        def read() -> dict[str, list[CellResult]]:
            found: dict[str, list[CellResult]] = {}
            for (text,) in self.connection.execute(
                "SELECT result_json FROM repeats WHERE run_id = ? ORDER BY cell_id, repeat", (self.resolve(run_id),)
            ):
                result = CellResult.model_validate_json(text)
                found.setdefault(result.cell_id, []).append(result)
            return found

        return self._reading(read)

    def store_probe(self, run_id: str, result: CellResult) -> None:
        """Commit the outcome of one probe of a batch search as it ends; never replaced."""
        what = f"the probe of cell {result.cell.label}"
        row = (run_id, result.cell_id, result.status, result.model_dump_json(), _now())
        self._insert_once(run_id, what, "INSERT INTO probes VALUES (?, ?, ?, ?, ?)", row)

    def load_probes(self, run_id: str) -> dict[str, CellResult]:
        """The stored probe outcomes of ``run_id``'s batch searches, by cell id."""
        if not self.has_probes:
            return {}

        def read() -> dict[str, CellResult]:
            rows = self.connection.execute("SELECT result_json FROM probes WHERE run_id = ?", (self.resolve(run_id),))
            return {result.cell_id: result for result in (CellResult.model_validate_json(text) for (text,) in rows)}

        return self._reading(read)

    def delete_run(self, run_id: str) -> tuple[str, int]:
        """Remove a run, its cells and its results in one transaction; its full id and how many results
        went with it."""
        run_id = self.resolve(run_id)
        with self.connection:
            count = self.connection.execute("SELECT COUNT(*) FROM results WHERE run_id = ?", (run_id,)).fetchone()[0]
            for table in ("probes", "repeats", "results", "cells", "runs"):
                self.connection.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
        return run_id, int(count)

    def set_run_status(self, run_id: str, status: str) -> None:
        self._write(
            f"the status of run {run_id}",
            "UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?",
            (status, _now(), run_id),
        )

    def check_same_file(self) -> None:
        """A DatabaseGone when the file at the store's path is no longer the one opened (removed, or
        replaced by another): what would be committed now would go nowhere anyone can read."""
        now = _file_id(self.path)
        if self.file_id is not None and now != self.file_id:
            what = "was removed" if now is None else "was replaced by another file"
            raise DatabaseGone(f"--db: {str(self.path)!r} {what} while this run was writing to it")

    def rescue(self, run_id: str, destination: Path) -> None:
        """Copy what the opened file still holds (the run's stored results among them, though its path is
        gone) to ``destination``, a new database of which ``run_id`` is marked interrupted."""
        try:
            copy = sqlite3.connect(destination)
            try:
                self.connection.backup(copy)
                with copy:
                    copy.execute(
                        "UPDATE runs SET status = 'interrupted', finished_at = ? WHERE run_id = ?", (_now(), run_id)
                    )
            finally:
                copy.close()
        except sqlite3.Error as error:
            raise StoreError(f"cannot copy the run out of {str(self.path)!r}: {error}") from None

    def _write(self, what: str, statement: str, values: tuple[Any, ...]) -> None:
        """One statement committed, retried with backoff while another writer holds the database past the
        busy timeout; a StoreError saying why when it cannot be written (disk full, read-only, locked
        throughout), a DatabaseGone when the file was removed or replaced. Integrity errors (a duplicate)
        are the caller's."""
        self.check_same_file()
        for pause in (*WRITE_RETRY_PAUSES_S, None):
            try:
                with self.connection:
                    self.connection.execute(statement, values)
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) and "busy" not in str(error):
                    raise StoreError(f"cannot store {what} in {str(self.path)!r}: {error}") from None
                if pause is None:
                    waited = BUSY_TIMEOUT_S * (len(WRITE_RETRY_PAUSES_S) + 1) + sum(WRITE_RETRY_PAUSES_S)
                    raise StoreError(
                        f"cannot store {what}: {str(self.path)!r} stayed locked by another writer for over "
                        f"{waited:.0f} s"
                    ) from None
                time.sleep(pause)

    # reading: damage in the file is reported as damage, never as a traceback
    def run_ids(self) -> list[str]:
        return self._reading(self._run_ids)

    def load_run(self, run_id: str, results: bool = True) -> Run:
        """A run with its results, or (``results`` false) with none: ``iter_results`` reads them then."""
        return self._reading(lambda: self._load_run(run_id, results))

    def iter_results(self, run_id: str) -> Iterator[CellResult]:
        """The results of ``run_id`` one at a time, in its cells' order (any result of no cell last), as
        ``load_run`` holds them, never all in memory at once."""
        full = self._reading(lambda: self.resolve(run_id))
        machines = _decoded(full, "field machines", lambda: self._reading(lambda: self._machines_of(full)))
        cursor = self._reading(
            lambda: self.connection.execute(
                "SELECT s.cell_id, s.result_json FROM results s LEFT JOIN cells c "
                "ON c.run_id = s.run_id AND c.cell_id = s.cell_id WHERE s.run_id = ? "
                "ORDER BY c.position IS NULL, c.position, s.rowid",
                (full,),
            )
        )
        while rows := self._reading(lambda: cursor.fetchmany(RESULTS_AT_ONCE)):
            for cell_id, text in rows:
                yield _result(full, cell_id, text, machines)

    def run_state(self, run_id: str) -> RunState:
        """Where a run stands, from its row and counts: none of its results is read."""

        def read() -> RunState:
            full = self.resolve(run_id)
            status, config = self.connection.execute(
                "SELECT status, config_json FROM runs WHERE run_id = ?", (full,)
            ).fetchone()
            counts = dict.fromkeys(STATUSES, 0)
            counts.update(
                self.connection.execute(
                    "SELECT status, COUNT(*) FROM results WHERE run_id = ? GROUP BY status", (full,)
                ).fetchall()
            )
            (counts["pending"],) = self.connection.execute(
                "SELECT COUNT(*) FROM cells c WHERE c.run_id = ? AND NOT EXISTS "
                "(SELECT 1 FROM results s WHERE s.run_id = c.run_id AND s.cell_id = c.cell_id)",
                (full,),
            ).fetchone()
            searched = _decoded(
                full, "field config", lambda: SweepConfig.model_validate_json(config, context={"stored": True})
            ).batch_search
            return RunState(full, status, counts, searched)

        return self._reading(read)

    def run_summaries(self) -> list[dict[str, Any]]:
        return self._reading(self._run_summaries)

    def _reading(self, read: Callable[[], T]) -> T:
        try:
            return read()
        except sqlite3.OperationalError as error:
            raise StoreError(f"--db: cannot read {str(self.path)!r}: {error}") from None
        except sqlite3.DatabaseError as error:
            try:
                readable = ", ".join(self._run_ids()) or "none"
            except sqlite3.DatabaseError:
                readable = "none (the list of runs is damaged too)"
            raise StoreError(
                f"--db: {str(self.path)!r} is damaged ({error}); runs whose ids can still be read: {readable}; "
                f"{RECOVER}"
            ) from None

    def recent_environments(self, max_age_s: float) -> list[tuple[str, str, Environment]]:
        """(run id, created at, environment) of the runs created within ``max_age_s``, newest first."""
        since = datetime.fromtimestamp(time.time() - max_age_s, timezone.utc).isoformat(timespec="seconds")
        rows = self._reading(
            lambda: self.connection.execute(
                "SELECT run_id, created_at, environment_json FROM runs WHERE created_at >= ? "
                "ORDER BY created_at DESC, rowid DESC",
                (since,),
            ).fetchall()
        )
        found = []
        for run_id, created, text in rows:
            try:  # an unreadable neighbour is no reason for a new run to fail: it is passed over
                found.append((str(run_id), str(created), Environment.model_validate_json(text)))
            except (TypeError, ValueError):
                continue
        return found

    def run_config(self, run_id: str) -> SweepConfig:
        """A run's config alone (none of its cells or results read)."""

        def read() -> SweepConfig:
            full = self.resolve(run_id)
            (text,) = self.connection.execute("SELECT config_json FROM runs WHERE run_id = ?", (full,)).fetchone()
            stored = {"stored": True}
            return _decoded(full, "field config", lambda: SweepConfig.model_validate_json(text, context=stored))

        return self._reading(read)

    def latency_summaries(self, run_id: str) -> list[tuple[str, str, dict[str, Any]]]:
        """(cell id, device, latency summary) of each ok result of ``run_id`` made on the run's own machine,
        measured in full (no probe) while its noise audit found the machine quiet: what the drift between
        runs reads (measure/drift.py). The summaries are read out of the results without their samples."""

        def read() -> list[tuple[str, str, dict[str, Any]]]:
            rows = self.connection.execute(
                "SELECT cell_id, json_extract(result_json, '$.cell.device', '$.latency', '$.noise.suspect', "
                "'$.stop_reason') FROM results WHERE run_id = ? AND status = 'ok' AND machine_id IS NULL",
                (run_id,),
            ).fetchall()
            found = []
            for cell_id, text in rows:
                try:
                    device, latency, suspect, stop = json.loads(text)
                except (TypeError, ValueError):  # a damaged row is passed over: the drift is made of the others
                    continue
                if isinstance(latency, dict) and isinstance(device, str) and not suspect and stop != PROBE:
                    found.append((str(cell_id), device, latency))
            return found

        return self._reading(read)

    def repeated_run_ids(self) -> set[str]:
        """The runs that measured some cell in several processes (their processes are in the repeats table)."""
        if not self.has_repeats:
            return set()
        return self._reading(
            lambda: {str(row[0]) for row in self.connection.execute("SELECT DISTINCT run_id FROM repeats")}
        )

    def _run_ids(self) -> list[str]:
        return [str(row[0]) for row in self.connection.execute("SELECT run_id FROM runs ORDER BY created_at, rowid")]

    def resolve(self, run_id: str) -> str:
        """A full run id from an id, a unique prefix of one, or ``latest``. A full id is looked up alone:
        the drift between runs resolves up to 200 of them as a run starts, and listing a database of
        1,000 runs for each took 0.6 s."""
        query = "SELECT 1 FROM runs WHERE run_id = ?"
        if run_id != "latest" and self._reading(lambda: self.connection.execute(query, (run_id,)).fetchone()):
            return run_id
        ids = self.run_ids()
        if run_id == "latest" and ids:
            return ids[-1]
        if run_id in ids:
            return run_id
        matches = [i for i in ids if i.startswith(run_id)]
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(ids[-5:]) or "none yet"
        what = "is ambiguous" if matches else "is not in"
        raise StoreError(f"run id: {run_id!r} {what} {str(self.path)!r}; latest runs: {known}")

    def _load_run(self, run_id: str, with_results: bool) -> Run:
        run_id = self.resolve(run_id)
        row = self.connection.execute(
            "SELECT r.run_id, r.name, r.created_at, r.finished_at, r.status, r.config_json, r.environment_json, "
            f"{self.tags} FROM runs r WHERE r.run_id = ?",
            (run_id,),
        ).fetchone()
        stored = {"stored": True}  # a run's config reads back where its user models and data are not
        cells = [
            _decoded(run_id, "a cell", partial(_cell, r))
            for r in self.connection.execute(
                "SELECT model, workload, backend, device, precision, batch_size, threads, "
                f"{self.later_fields} FROM cells WHERE run_id = ? ORDER BY position",
                (run_id,),
            )
        ]
        order = {c.cell_id: i for i, c in enumerate(cells)}
        machines = _decoded(run_id, "field machines", lambda: self._machines_of(run_id))
        results: list[CellResult] = []
        if with_results:  # else not even read: export then reads them one at a time (iter_results)
            with _decoding(len(cells)):
                results = [
                    _result(run_id, cell_id, text, machines)
                    for cell_id, text in self.connection.execute(
                        "SELECT cell_id, result_json FROM results WHERE run_id = ?", (run_id,)
                    )
                ]
        results.sort(key=lambda r: order.get(r.cell_id, len(order)))
        fields = {
            "config": lambda: SweepConfig.model_validate_json(row[5], context=stored),
            "environment": lambda: Environment.model_validate_json(row[6]),
            "tags": lambda: _strings(json.loads(row[7])),
        }
        decoded = {name: _decoded(run_id, f"field {name}", read) for name, read in fields.items()}
        data = {"run_id": row[0], "name": row[1], "created_at": row[2], "finished_at": row[3], "status": row[4]}
        return _decoded(
            run_id,
            "its row",
            lambda: Run.model_validate(
                {**data, **decoded, "machines": machines, "cells": cells, "results": results}, context=stored
            ),
        )

    def _machines_of(self, run_id: str) -> dict[str, Machine]:
        """The machines other than its own that the results of ``run_id`` name."""
        if not self.has_machines:
            return {}
        rows = self.connection.execute(
            "SELECT machine_id, machine_json FROM machines WHERE machine_id IN "
            "(SELECT machine_id FROM results WHERE run_id = ?)",
            (run_id,),
        )
        return {str(machine_id): Machine.model_validate_json(text) for machine_id, text in rows}

    def load_machines(self, run_id: str, machine_ids: Iterable[str]) -> dict[str, Machine]:
        """The stored machines of ``machine_ids`` (those the uncombined processes of ``run_id`` name, for
        their idle power), by id; an id the file does not hold is left out."""
        wanted = sorted(set(machine_ids))
        if not wanted or not self.has_machines:
            return {}

        def read() -> dict[str, Machine]:
            rows = self.connection.execute(
                f"SELECT machine_id, machine_json FROM machines WHERE machine_id IN ({', '.join('?' * len(wanted))})",
                wanted,
            )
            return {str(machine_id): Machine.model_validate_json(text) for machine_id, text in rows}

        return _decoded(run_id, "field machines", lambda: self._reading(read))

    def _run_summaries(self) -> list[dict[str, Any]]:
        query = f"""
            SELECT r.run_id, r.name, {self.tags}, r.created_at, r.status,
                   (SELECT COUNT(*) FROM cells c WHERE c.run_id = r.run_id),
                   (SELECT COUNT(*) FROM results s WHERE s.run_id = r.run_id AND s.status = 'ok'),
                   (SELECT COUNT(*) FROM results s WHERE s.run_id = r.run_id AND s.status = 'skipped'),
                   (SELECT COUNT(*) FROM results s WHERE s.run_id = r.run_id
                        AND s.status NOT IN ('ok', 'skipped'))
            FROM runs r ORDER BY r.created_at, r.rowid
        """
        keys = ("run_id", "name", "tags", "created_at", "status", "cells", "ok", "skipped", "failed")
        rows = []
        for values in self.connection.execute(query):
            row = dict(zip(keys, values, strict=True))
            try:
                row["tags"] = ", ".join(_strings(json.loads(row["tags"])))
                if not all(isinstance(row[key], str) for key in ("run_id", "name", "created_at", "status")):
                    raise TypeError("its id, name, creation time or status is not text")
            except (TypeError, ValueError) as error:
                self.damaged.append(f"run {visible(row['run_id'])} is not listed: {_why(error)}")
                continue
            rows.append(row)
        return rows
