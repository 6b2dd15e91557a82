"""Runs side by side, each in a fresh process, and the progress line."""
import os
import time
from typing import List, Optional

from .runs import RunOptions, run_variant, save_result

TAG = '[leaderboard]'


def format_duration(seconds: float) -> str:
    """``54 s``, ``8 min``, ``2 h 5 min``."""
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f'{seconds:.0f} s'
    minutes = int(round(seconds / 60))
    if minutes < 90:
        return f'{minutes} min'
    return f'{minutes // 60} h {minutes % 60} min'


def default_jobs() -> int:
    """Runs at a time: 1 with a GPU; on a CPU of 2 or more cores, 2.

    Two single-threaded runs side by side finish ~1.7x sooner on this project's
    2-core machine than one after the other with 2 threads each (small convs use
    a second thread poorly). The thread count changes float summation order, so
    results are reproducible for the same number of jobs and cores.
    """
    import torch
    if torch.cuda.is_available():
        return 1
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def _init_worker(threads: int) -> None:
    import torch
    torch.set_num_threads(threads)


def _run_job(cfg_path: str,
             run_dir: str,
             seed: int,
             options: 'RunOptions',
             variant: str,
             result_path: str,
             stream_checkpoints: Optional[dict] = None) -> tuple:
    """:func:`run_variant` in a worker process: ``(result, None, seconds)`` or
    ``(None, traceback, seconds)``; the result is saved to ``result_path``."""
    import traceback
    t0 = time.time()
    try:
        result = run_variant(cfg_path, run_dir, seed, options, variant,
                             stream_checkpoints)
    except Exception:  # reported by the caller, which goes on with the others
        return None, traceback.format_exc(), time.time() - t0
    save_result(result_path, result)
    return result, None, time.time() - t0


def run_jobs(jobs: List[tuple], workers: int):
    """Run :func:`run_variant` jobs ``(cfg_path, run_dir, seed, options, variant,
    result_path[, stream_checkpoints])``, ``workers`` at a time in fresh
    processes (one process each when ``workers`` is 1: the runs still do not
    share mmengine's global state).

    Yields ``(job, result or None, traceback or None, seconds)`` as jobs end
    (``seconds``: the run's own time, not its wait in the queue).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    context = multiprocessing.get_context('spawn')
    with ProcessPoolExecutor(
            max_workers=max(1, workers),
            mp_context=context,
            initializer=_init_worker,
            initargs=(threads, ),
            max_tasks_per_child=1) as pool:
        submitted = {pool.submit(_run_job, *job): job for job in jobs}
        for future in as_completed(submitted):
            yield (submitted[future], *future.result())


class Progress:
    """One line per run with the time left for the whole benchmark.

    The time left is the mean duration of the runs done here so far times the
    runs still to do, divided by the runs that go side by side (runs found
    finished cost nothing).

    Args:
        total (int): Runs in the benchmark.
        to_do (int): Of those, the runs that need training or testing.
        jobs (int): Runs at a time.
    """

    def __init__(self, total: int, to_do: int, jobs: int = 1):
        self.total = total
        self.to_do = to_do
        self.jobs = max(1, jobs)
        self.index = 0
        self.durations: List[float] = []

    def remaining(self) -> Optional[float]:
        left = self.to_do - len(self.durations)
        if left <= 0:
            return 0.0
        if not self.durations:
            return None
        return left * sum(self.durations) / len(self.durations) / self.jobs

    def line(self, variant: str, seed: int, seconds: Optional[float]) -> str:
        """The line after a run (``seconds`` None: found finished, skipped)."""
        self.index += 1
        if seconds is not None:
            self.durations.append(seconds)
        done = 'finished before, skipped' if seconds is None else \
            format_duration(seconds)
        left = self.remaining()
        tail = ('time left not known yet' if left is None else
                'nothing left' if left == 0 else f'about {format_duration(left)} left')
        return (f'{TAG} run {self.index}/{self.total} {variant} seed {seed}: {done}; '
                f'{tail}')


__all__ = ['TAG', 'format_duration', 'default_jobs', 'run_jobs', 'Progress']
