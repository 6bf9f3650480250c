"""Worker processes (mets_fast.processes): they die with the process that started them, and
--workers is capped by the machine."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from mets_fast.processes import cap_workers, cores
from mets_fast.prepare import main as prepare_main


def _children(pid: int) -> set:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.add(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc (Linux)")
def test_workers_and_the_resource_tracker_die_with_a_killed_parent():
    script = textwrap.dedent("""
        import sys, time
        from mets_fast.processes import worker_pool
        pool = worker_pool(2)
        futures = [pool.submit(time.sleep, 120) for _ in range(2)]
        while len(pool._processes) < 2:
            time.sleep(0.05)
        print("ready", flush=True)
        time.sleep(120)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        children = _children(parent.pid)
        assert len(children) >= 2  # the two workers (and multiprocessing's resource tracker)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(c) for c in children):
        time.sleep(0.1)
    assert not [c for c in children if _alive(c)]


def test_workers_are_capped_by_the_cores(tmp_path, capsys):
    with pytest.warns(UserWarning, match=f"--workers 64 capped at {cores()}"):
        assert cap_workers(64) == cores()
    assert cap_workers(1) == 1
    with pytest.warns(UserWarning, match="capped"):  # capped before anything else
        assert prepare_main(["synthetic", "--n", "10", "--out", str(tmp_path / "s"),
                             "--workers", "64", "--quiet"]) == 2  # synthetic takes none
