"""One agent per data folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.instance import AlreadyRunning, InstanceLock

REPO = Path(__file__).resolve().parents[2]

ACQUIRE = """
import sys
from agent.instance import AlreadyRunning, InstanceLock
try:
    InstanceLock(sys.argv[1]).acquire()
except AlreadyRunning as exc:
    print("refused:", exc)
    sys.exit(3)
print("acquired")
"""


def test_a_second_lock_on_the_same_folder_is_refused(tmp_path):
    first = InstanceLock(tmp_path).acquire()
    try:
        with pytest.raises(AlreadyRunning, match=str(tmp_path)):
            InstanceLock(tmp_path).acquire()
        assert (tmp_path / "agent.lock").read_text() == str(os.getpid())
    finally:
        first.release()


def test_a_different_folder_is_fine(tmp_path):
    a = InstanceLock(tmp_path / "a").acquire()
    b = InstanceLock(tmp_path / "b").acquire()
    a.release()
    b.release()


def test_a_released_lock_can_be_acquired_again(tmp_path):
    lock = InstanceLock(tmp_path).acquire()
    lock.release()
    lock.release()  # twice is harmless
    again = InstanceLock(tmp_path).acquire()
    again.release()
    lock.acquire().release()


def _run_acquire(folder: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", ACQUIRE, str(folder)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_another_process_is_refused_while_the_lock_is_held(tmp_path):
    lock = InstanceLock(tmp_path).acquire()
    try:
        refused = _run_acquire(tmp_path)
        assert refused.returncode == 3, refused.stderr
        assert "refused" in refused.stdout
    finally:
        lock.release()
    after = _run_acquire(tmp_path)  # the lock died with its holder: free again
    assert after.returncode == 0, after.stderr
    assert "acquired" in after.stdout
