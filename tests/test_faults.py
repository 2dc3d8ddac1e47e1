"""Faults and hostile input, as a real user and an unlucky machine bring them: real subprocesses, real
signals, real files. Each case fails on the code before its fix."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import yaml
from helpers import fast_config, start_slow_sweep, wattgap

from wattgap.errors import StoreError
from wattgap.machines import Environment
from wattgap.store.sqlite import Store

pytestmark = pytest.mark.faults


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_running_run_is_locked_and_a_stopped_one_resumes(tmp_path: Path, signum: int) -> None:
    """--resume of a live run used to measure the same cells twice; SIGTERM and SIGHUP left the run
    'running' with no word. Now: refused while live, marked interrupted when stopped, then resumable."""
    process, run_id = start_slow_sweep(tmp_path)
    refused = wattgap("run", "--resume", run_id, cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert f"run {run_id} is being executed by wattgap process {process.pid} on" in refused.stderr
    process.send_signal(signum)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 128 + signum
    assert f"stopped by {signal.Signals(signum).name}; finished cells are stored" in out.decode()
    connection = sqlite3.connect(tmp_path / "wattgap.db")
    assert connection.execute("SELECT status FROM runs").fetchone()[0] == "interrupted"
    before = dict(connection.execute("SELECT cell_id, result_json FROM results").fetchall())
    resumed = wattgap("run", "--resume", run_id, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    after = dict(connection.execute("SELECT cell_id, result_json FROM results").fetchall())
    assert len(after) == 6 and all(after[cell] == text for cell, text in before.items())
    assert not (tmp_path / ".wattgap.db.locks").exists()


def test_a_lock_left_by_a_killed_process_is_stale(tmp_path: Path) -> None:
    process, run_id = start_slow_sweep(tmp_path)
    process.kill()
    process.wait()
    assert (tmp_path / ".wattgap.db.locks" / f"{run_id}.lock").exists()  # left behind by SIGKILL
    resumed = wattgap("run", "--resume", run_id, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("export")
    (folder / "sweep.yaml").write_text(yaml.safe_dump(fast_config(energy={"idle_s": 0})))
    done = wattgap("run", "--config", "sweep.yaml", "--quiet", cwd=folder)
    assert done.returncode == 0, done.stderr
    return folder / "wattgap.db", done.stdout.strip().splitlines()[-1].removeprefix("run id: ")


def _export(db: Path, run_id: str, output: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return wattgap(
        "export", run_id, "--format", "json", "--output", str(output), "--db", str(db), *extra, cwd=db.parent
    )


def test_export_never_replaces_what_is_not_a_regular_file(exported: tuple[Path, str], tmp_path: Path) -> None:
    """A symlink, a FIFO and a folder used to become regular files (as root, /dev/null too)."""
    db, run_id = exported
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path, kind in ((link, "a symbolic link"), (fifo, "a FIFO"), (tmp_path, "a folder")):
        done = _export(db, run_id, path, "--force")
        assert done.returncode == 2 and f"is {kind}" in done.stderr, done.stderr
    assert link.is_symlink() and target.read_text() == "keep me" and stat.S_ISFIFO(fifo.lstat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "pipe", "precious.txt"]  # no temp left


def test_export_replaces_a_file_only_with_force_and_keeps_its_permissions(
    exported: tuple[Path, str], tmp_path: Path
) -> None:
    db, run_id = exported
    out = tmp_path / "run.json"
    assert _export(db, run_id, out).returncode == 0 and json.loads(out.read_text())["run_id"] == run_id
    out.write_text("older export")
    out.chmod(0o640)
    refused = _export(db, run_id, out)
    assert refused.returncode == 2 and "exists; add --force to replace it" in refused.stderr
    assert out.read_text() == "older export"
    assert _export(db, run_id, out, "--force").returncode == 0
    assert json.loads(out.read_text())["run_id"] == run_id and stat.S_IMODE(out.stat().st_mode) == 0o640


def test_foreign_text_reaches_the_terminal_as_text(tmp_path: Path) -> None:
    """Square brackets in a run name crashed the progress display; [link=...] rendered as a link; escape
    sequences passed through. Run names and failing models' messages are printed as they are, with
    control characters shown, not executed."""
    name = "[/data/train] [link=http://example.invalid]x[/link] \x1b[2J\x1b]0;title\x07"
    done = wattgap(
        "run", "--model", "helpers.usermodels:raises", "--name", name, "--idle", "0", cwd=tmp_path
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "\x1b[2J" not in done.stdout and "\x1b]0;" not in done.stdout and "\x07" not in done.stdout
    assert "[/data/train] [link=http://example.invalid]x[/link]" in done.stdout
    shown = wattgap("show", "latest", cwd=tmp_path)
    assert shown.returncode == 0 and "[/data/train]" in shown.stdout and "\x1b[2J" not in shown.stdout
    listed = wattgap("list", "runs", cwd=tmp_path)
    assert listed.returncode == 0 and "\x1b" not in listed.stdout


def test_error_messages_are_one_short_line(tmp_path: Path) -> None:
    done = wattgap("run", "--model", "m" * 100_000, "--dry-run", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and len(done.stderr) < 1100
    assert "Traceback" not in done.stderr and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("model", ["spawns_orphans", "forks_holding_the_pipe"])
def test_what_a_cell_starts_ends_with_it(tmp_path: Path, model: str) -> None:
    """A helper in a new session outlived the run (reparented to PID 1); a forked child holding the
    result pipe made the sweep wait the whole cell timeout after the result had arrived, and the probe
    that loads a user model before the run wait its whole timeout for its answer."""
    pids = tmp_path / "pids"
    env = {**os.environ, "WATTGAP_TEST_PIDS": str(pids)}
    (tmp_path / "sweep.yaml").write_text(
        yaml.safe_dump(fast_config(models=[f"helpers.usermodels:{model}"], cell_timeout_s=120))
    )
    done = wattgap("run", "--config", "sweep.yaml", "--quiet", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    started = [int(line) for line in pids.read_text().split()]
    assert started and not [pid for pid in started if psutil.pid_exists(pid) and _alive(pid)]
    with Store.open_readonly(tmp_path / "wattgap.db") as store:
        run = store.load_run("latest")
    (result,) = run.results
    assert result.status == "ok" and result.phases.total_s is not None and result.phases.total_s < 60
    assert run.environment.user_models[f"helpers.usermodels:{model}"]["parameters"]  # the probe answered


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _mount(*args: str) -> str:
    """Run mount; the reason it failed, or '' (tests that need a mount skip with that reason)."""
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    return "" if done.returncode == 0 else f"mount {' '.join(args)}: {done.stderr.strip() or done.returncode}"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "small"
    folder.mkdir()
    why = _mount("-t", "tmpfs", "-o", "size=160k", "tmpfs", str(folder))
    if why:
        pytest.skip(f"needs a small tmpfs: {why}")
    yield folder
    subprocess.run(["umount", "--lazy", str(folder)], check=False)


def test_a_full_disk_stops_cleanly_and_loses_nothing_that_finished(small_disk: Path, tmp_path: Path) -> None:
    """A full disk was a traceback that lost the cell just finished. Now: one line with the resume
    command, every stored result intact, the unwritable one kept elsewhere, and --resume (on a disk with
    room) stores it first and runs the rest."""
    config = fast_config(batch_sizes=[1, 2, 3, 4, 5, 6, 7, 8], energy={"idle_s": 0})
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(config))
    db, spill = small_disk / "wattgap.db", tmp_path / "spill"
    env = {**os.environ, "WATTGAP_SPILL_DIR": str(spill)}
    done = wattgap("run", "--config", str(tmp_path / "sweep.yaml"), "--db", str(db), "--quiet", cwd=tmp_path, env=env)
    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    assert "database or disk is full" in done.stderr and "wattgap run --resume" in done.stderr
    assert "its result is kept in" in done.stderr
    connection = sqlite3.connect(db)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = dict(connection.execute("SELECT cell_id, result_json FROM results").fetchall())
        (run_id,) = connection.execute("SELECT run_id FROM runs").fetchone()
    finally:
        connection.close()  # else the tmpfs is busy and cannot be unmounted
    assert stored  # what finished before the disk filled is there
    (kept,) = (spill / "wattgap-unstored" / run_id).glob("*.json")
    kept_text = kept.read_text()
    roomy = tmp_path / "roomy.db"
    for suffix in ("", "-wal"):  # the database and its write-ahead log, as one moves a WAL database
        if Path(f"{db}{suffix}").exists():
            Path(f"{roomy}{suffix}").write_bytes(Path(f"{db}{suffix}").read_bytes())
    resumed = wattgap("run", "--resume", run_id, "--db", str(roomy), "--quiet", cwd=tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr
    with Store.open_readonly(roomy) as store:
        run = store.load_run(run_id)
    assert run.status == "complete" and len(run.results) == 8
    kept_result = json.loads(kept_text)
    resumed_result = next(r for r in run.results if r.cell_id == kept.stem)
    assert resumed_result.latencies_s == kept_result["latencies_s"]  # the kept measurement, not a new one
    assert resumed_result.started_at == kept_result["started_at"]
    assert not kept.exists()  # stored, then forgotten


def test_a_database_on_a_read_only_filesystem_reads(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "sweep.yaml").write_text(yaml.safe_dump(fast_config(energy={"idle_s": 0})))
    assert wattgap("run", "--config", "sweep.yaml", "--quiet", cwd=source).returncode == 0
    frozen = tmp_path / "ro"
    frozen.mkdir()
    why = _mount("--bind", str(source), str(frozen)) or _mount("-o", "remount,bind,ro", str(frozen))
    if why:
        subprocess.run(["umount", str(frozen)], check=False)
        pytest.skip(f"needs a read-only bind mount: {why}")
    try:
        shown = wattgap("show", "latest", "--db", str(frozen / "wattgap.db"), cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert "1 ok" in shown.stdout
    finally:
        subprocess.run(["umount", str(frozen)], check=False)


@pytest.fixture(scope="module")
def valid_db(exported: tuple[Path, str]) -> bytes:
    db, _ = exported
    connection = sqlite3.connect(db)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return db.read_bytes()


@pytest.mark.parametrize("damage", ["truncated", "corrupt page"])
def test_damage_is_reported_as_damage(valid_db: bytes, tmp_path: Path, damage: str) -> None:
    """A truncated file was called 'not SQLite'; a corrupt page gave a traceback in every command."""
    broken = tmp_path / "broken.db"
    if damage == "truncated":
        broken.write_bytes(valid_db[:6000])
    else:
        page = 4096
        broken.write_bytes(valid_db[: 2 * page] + b"\xde\xad" * (page // 2) + valid_db[3 * page :])
    for command in (["show", "latest"], ["export", "latest", "--format", "json"]):
        done = wattgap(*command, "--db", str(broken), cwd=tmp_path)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1 and "damaged" in done.stderr and ".recover" in done.stderr
        assert "not a SQLite file" not in done.stderr
    listed = wattgap("list", "runs", "--db", str(broken), cwd=tmp_path)  # what can still be read is read
    assert "Traceback" not in listed.stderr
    assert listed.returncode == 0 or (listed.returncode == 2 and "damaged" in listed.stderr)


def test_a_blank_file_left_by_an_interrupted_creation_is_created(tmp_path: Path) -> None:
    """A kill during creation left a SQLite file without the schema, refused forever."""
    blank = tmp_path / "wattgap.db"
    sqlite3.connect(blank).execute("PRAGMA journal_mode=WAL").connection.close()
    assert blank.stat().st_size > 0
    Store.open(blank).close()
    with Store.open_readonly(blank) as store:
        assert store.run_ids() == []


def test_processes_creating_one_database_at_once_share_one_schema(tmp_path: Path) -> None:
    """Two runs creating the file at once: one of them used to fail ('table runs already exists')."""
    db = tmp_path / "wattgap.db"
    start = time.time() + 2.0
    script = (
        "import sys, time; from wattgap.store.sqlite import Store; "
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); Store.open(sys.argv[1]).close()"
    )
    workers = [subprocess.Popen([sys.executable, "-c", script, str(db), str(start)]) for _ in range(4)]
    assert [worker.wait(timeout=60) for worker in workers] == [0, 0, 0, 0]
    connection = sqlite3.connect(db)
    assert (
        connection.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0] == 6
    )  # runs, cells, results, repeats, probes, machines


def test_a_write_waits_out_another_writers_lock_and_says_so_when_it_cannot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Locked past the busy timeout used to be a traceback that lost the cell just finished."""
    import wattgap.store.sqlite as sqlite_store

    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_S", 0.3)
    monkeypatch.setattr(sqlite_store, "WRITE_RETRY_PAUSES_S", (0.3, 0.6))
    db = tmp_path / "wattgap.db"
    store = Store.open(db)
    run = fast_config()
    from wattgap.config import parse_config

    store.create_run("r1", parse_config(run), Environment(), [], {}, "test")
    hold = (
        "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
        "c.execute('BEGIN IMMEDIATE'); print('held', flush=True); time.sleep(float(sys.argv[2])); c.execute('COMMIT')"
    )
    for seconds, succeeds in ((1.0, True), (8.0, False)):
        holder = subprocess.Popen([sys.executable, "-c", hold, str(db), str(seconds)], stdout=subprocess.PIPE)
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        if succeeds:
            store.set_run_status("r1", "complete")  # after retries
        else:
            with pytest.raises(StoreError, match=r"stayed locked by another writer for over \d+ s"):
                store.set_run_status("r1", "interrupted")
        holder.wait(timeout=30)
    with Store.open_readonly(db) as reader:
        assert reader.load_run("r1").status == "complete"
    store.close()


def test_db_must_be_a_regular_file_or_a_new_path(tmp_path: Path) -> None:
    """A FIFO or a device as --db gave 'disk I/O error' or 'cannot rollback'; reading a FIFO said it did
    not exist."""
    fifo = tmp_path / "fifo.db"
    os.mkfifo(fifo)
    for db, kind in ((fifo, "a FIFO"), (Path("/dev/null"), "a character device")):
        ran = wattgap("run", "--model", "conv6", "--idle", "0", "--db", str(db), cwd=tmp_path)
        assert ran.returncode == 2 and f"is {kind}; give the path of a regular file" in ran.stderr
    shown = wattgap("show", "latest", "--db", str(fifo), cwd=tmp_path)
    assert shown.returncode == 2 and "is a FIFO" in shown.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and stat.S_ISCHR(Path("/dev/null").lstat().st_mode)
