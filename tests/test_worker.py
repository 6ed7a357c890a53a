"""Pool workers die with their parent: SIGKILL ``study run`` / ``dataset make`` mid-run
and no worker (nor multiprocessing's helper processes) survives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gridverify._worker import die_with_parent

REPO = Path(__file__).resolve().parents[1]


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, state) of every process (Linux /proc)."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        table[int(entry)] = (int(fields[1]), fields[0])
    return table


def _descendants(root: int) -> set[int]:
    table = _proc_table()
    found, frontier = set(), {root}
    while frontier:
        kids = {pid for pid, (ppid, _) in table.items() if ppid in frontier}
        kids -= found
        found |= kids
        frontier = kids
    return found


def _alive(pids: set[int]) -> set[int]:
    table = _proc_table()
    return {p for p in pids if p in table and table[p][1] != "Z"}


def _sigkill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)


def _kill_and_check(argv: list[str], cwd: Path, n_workers: int,
                    stop: Callable[[subprocess.Popen], None] = _sigkill) -> tuple[int, str]:
    """Run ``gridverify ARGV``, ``stop`` it once its workers run (SIGKILL by default),
    check that no worker outlives it; its exit status and stderr."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "gridverify", *argv], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        kids: set[int] = set()
        while time.monotonic() < deadline and proc.poll() is None:
            kids = _descendants(proc.pid)
            workers = [p for p in kids
                       if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
            if len(workers) >= n_workers:
                time.sleep(1.0)  # let a worker get into its initializer or a job
                kids = _descendants(proc.pid)
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the command ended before its workers started"
        assert kids, "no worker started"
        stop(proc)
        rc = proc.wait(timeout=60)
        deadline = time.monotonic() + 30
        while _alive(kids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(kids), f"orphans survived: {sorted(_alive(kids))}"
        return rc, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in _alive(kids):  # never leave a failed run's orphans behind
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow  # about 30 s: the driver's start-up, then the workers' imports
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_study_workers_die_with_a_killed_driver(tmp_path: Path) -> None:
    study = tmp_path / "s.toml"
    study.write_text(
        '[study]\nname = "s"\nmethods = ["bab"]\nbab_timeout = 30\n\n[cases.c]\n'
        'case = "pglib_opf_case14_ieee"\n'
        f'models = ["{REPO / "models" / "case14_relu"}", "{REPO / "models" / "case14_tanh"}"]'
        '\n\n[regions.r]\nbox = [0.9, 1.1]\n\n[constraints.all]\nfamilies = ["all"]\n')
    _kill_and_check(["study", "run", str(study), "--out", str(tmp_path / "out"),
                     "--workers", "2", "--quiet"], tmp_path, 2)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_dataset_workers_die_with_a_killed_parent(tmp_path: Path) -> None:
    _kill_and_check(["dataset", "make", "pglib_opf_case14_ieee", "--samples", "400",
                     "--workers", "2", "--out", str(tmp_path / "d.h5"), "--no-progress"],
                    tmp_path, 2)


def _two_ctrl_c(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_dataset_make_ends_on_two_ctrl_c_with_one_line(tmp_path: Path) -> None:
    """Ctrl-C twice while workers solve: the workers are ended, not waited for (the
    second Ctrl-C once left a pool half shut and the command hanging at exit), and
    stderr is the one line, without the resource tracker's warning about the locks
    of the ended workers."""
    rc, err = _kill_and_check(["dataset", "make", "pglib_opf_case14_ieee", "--samples", "400",
                               "--workers", "2", "--out", str(tmp_path / "d.h5"),
                               "--no-progress"], tmp_path, 2, stop=_two_ctrl_c)
    assert rc == 130, err
    lines = err.strip().splitlines()  # "stopping ..." too when the second came in time
    assert "gridverify: interrupted" in lines, err
    assert all(ln == "gridverify: interrupted" or ln.startswith("gridverify: stopping")
               for ln in lines), err
    assert "Traceback" not in err and "leaked" not in err, err


def test_die_with_parent_is_harmless_in_a_live_child() -> None:
    """Called in a child whose parent lives on, it returns and the child runs normally."""
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); import os; "
            "from gridverify._worker import die_with_parent; "
            "die_with_parent(int(sys.argv[1])); print('alive')")
    out = subprocess.run([sys.executable, "-c", code, str(os.getpid())], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert out.strip() == "alive"
    assert callable(die_with_parent)
