"""Worker processes that end with their parent.

A pool of :func:`worker_pool` ignores Ctrl-C (the parent handles it and stops the pool with
:func:`stop_workers`), unwinds on SIGTERM (removing temporary files: :class:`Stopped`), and
gets SIGTERM as soon as its parent dies, however it dies; its BLAS runs on one thread (the
workers already share the cores). Used by the database build, the
redraw pool of the recipe and screening.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

__all__ = ["Stopped", "default_workers", "worker_pool", "stop_workers"]


class Stopped(SystemExit):
    """Raised in a worker by SIGTERM: unwinds (removing temporary files), then exits."""


def _on_sigterm(signum, frame):
    raise Stopped(128 + signum)


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)


def _worker_init(parent_pid: int) -> None:
    """Worker start-up: Ctrl-C is the parent's to handle; SIGTERM stops cleanly; the worker
    gets SIGTERM when its parent dies (at once on Linux, else within half a second)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - no prctl
            pass
    _one_blas_thread()
    if os.getppid() == parent_pid:  # else a fork server started us: nothing to watch
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    else:  # the parent died before this line
        os.kill(os.getpid(), signal.SIGTERM)


def _one_blas_thread() -> None:
    """A worker is one of several processes sharing the cores: its BLAS (numpy's matrix
    products) runs on one thread, not one per core (oversubscribed, a product of a conform
    took 5 times longer on 2 busy cores)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings it
        return
    try:
        threadpool_limits(1, user_api="blas")
    except Exception:  # noqa: BLE001 - only a speed matter  # pragma: no cover
        pass


def default_workers() -> int:
    """Worker processes a build uses by default: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def _mp_context():
    """``fork`` on Linux while TensorFlow is not loaded (fast, works from any ``__main__``);
    ``spawn`` elsewhere (forking a process that runs TensorFlow's threads is unsafe)."""
    if sys.platform.startswith("linux") and "tensorflow" not in sys.modules:
        return get_context("fork")
    return get_context("spawn")


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's processes now (running chunks are abandoned; they resume later)."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        if proc.is_alive():
            proc.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A process pool of ``workers`` whose workers end with this process (see the module)."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context(),
                               initializer=_worker_init, initargs=(os.getpid(),))
