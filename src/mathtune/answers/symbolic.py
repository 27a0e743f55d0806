"""math-verify in a persistent child process, so every symbolic check has a timeout that works from any thread.

math-verify's own timeouts use SIGALRM, which raises inside threads and misbehaves in worker processes. Here they
are switched off (`parsing_timeout=None`, `timeout_seconds=None`) and the parent enforces the timeout instead: it
waits on the child's reply and, past the deadline, kills the child and starts a fresh one in the background, both
off the caller's path so the call returns at its deadline. A small pool gives each concurrent caller its own
worker, so eight threads that each hit a timeout all return after one timeout, not eight in a row.
Backstops inside the child: a CPU-time rlimit of timeout + 5 s per check (so a worker orphaned by a crashed parent
still dies) and a 4 GiB address-space limit (a runaway simplification raises MemoryError instead of eating the host).

The child is a plain `python -c` subprocess speaking JSON lines, not a multiprocessing worker: it never re-imports
the caller's `__main__` (so scripts without an `if __name__ == "__main__"` guard work), it is fork+exec (safe under
torch's threads), and it imports only math-verify.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import subprocess
import sys
import threading

_START_TIMEOUT = 120.0  # importing sympy + math-verify; never counted against a check's own timeout

_MEMORY_LIMIT = 4 << 30  # bytes of address space for the child; sympy on real answers needs a few hundred MB
# The child's own backstop: the kernel stops it after this many CPU seconds beyond a check's timeout, even when the
# parent died mid-check (SIGKILL, OOM) and is no longer there to kill it. The parent normally kills it long before.
_CPU_GRACE = 5
_CHILD = r"""
import json, logging, sys, time
try:
    import resource
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGXCPU would otherwise dump core
except Exception:  # no resource module (Windows): the parent's kill is the only timeout
    resource = None
try:  # a runaway simplification should fail with MemoryError here, not exhaust the host before the timeout
    resource.setrlimit(resource.RLIMIT_AS, (%d, %d))
except Exception:
    pass
out, sys.stdout = sys.stdout, sys.stderr  # only replies go to the pipe, whatever the libraries print
logging.getLogger("math_verify").setLevel(logging.ERROR)  # the "timeout is disabled" warning is expected
from math_verify import parse, verify
out.write('"ready"\n'); out.flush()
for line in sys.stdin:
    gold, pred, cpu_budget = json.loads(line)
    if resource is not None:
        hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
        soft = int(time.process_time() + cpu_budget) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (soft if hard < 0 else min(soft, hard), hard))
    try:
        ok = verify(parse(gold, parsing_timeout=None), parse(pred, parsing_timeout=None), timeout_seconds=None)
        reply = ["match" if ok else "mismatch", ""]
    except Exception as exc:
        reply = ["error", repr(exc)[:300]]
    out.write(json.dumps(reply) + "\n"); out.flush()
""" % (_MEMORY_LIMIT, _MEMORY_LIMIT)


class _Worker:
    """One child process and a reader thread that turns its stdout lines into queue items."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.replies: queue.Queue[object] = queue.Queue()
        # A thread, not select(), so the wait with a deadline works on every platform.
        threading.Thread(target=self._read, daemon=True).start()
        self.ready = False

    def wait_ready(self) -> None:
        """Block until the child has imported math-verify (started in the background by __init__)."""
        if not self.ready:
            if self._next(_START_TIMEOUT) != "ready":
                self.kill()
                raise RuntimeError("math-verify worker failed to start; is math-verify importable by sys.executable?")
            self.ready = True

    def is_ready(self) -> bool:
        """True once the child has imported math-verify (never blocks)."""
        if not self.ready:
            try:
                reply = self.replies.get_nowait()
            except queue.Empty:
                return False
            if reply != "ready":
                self.replies.put(reply)  # EOF or garbage: wait_ready() reports it
                return False
            self.ready = True
        return True

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.replies.put(json.loads(line))
            except ValueError:
                self.replies.put(["error", f"unreadable worker reply {line[:100]!r}"])
        self.replies.put(None)  # EOF: the child died

    def _next(self, timeout: float) -> object:
        try:
            return self.replies.get(timeout=timeout)
        except queue.Empty:
            return TimeoutError

    def ask(self, gold: str, pred: str, timeout: float) -> tuple[str, str]:
        """Send one check and wait for its (status, detail) reply; status "timeout" if none came in time."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps([gold, pred, timeout + _CPU_GRACE]) + "\n")
            self.proc.stdin.flush()
        except OSError as exc:
            return "error", f"worker pipe: {exc!r}"
        reply = self._next(timeout)
        if reply is TimeoutError:
            return "timeout", f"no answer within {timeout}s"
        if not isinstance(reply, list):
            return "error", "worker died"
        return reply[0], reply[1]

    def kill(self) -> None:
        """Kill the child and reap it."""
        self.proc.kill()
        self.proc.wait()


_MAX_IDLE = 8  # idle workers kept warm (each holds sympy, ~60 MB RSS); more are started when more threads check at once
_lock = threading.Lock()
_idle: list[_Worker] = []
_live: set[_Worker] = set()  # every worker started and not yet killed, so shutdown() stops them all


def _spawn() -> _Worker:
    worker = _Worker()
    with _lock:
        _live.add(worker)
    return worker


def _retire(worker: _Worker) -> None:
    """Kill a worker off the caller's path (reaping a child that holds gigabytes can take a while)."""
    with _lock:
        _live.discard(worker)
    threading.Thread(target=worker.kill, daemon=True).start()


def _refill() -> None:
    """Start a replacement worker in the background, so the next check finds one ready."""

    def start() -> None:
        worker = _spawn()
        with _lock:
            if len(_idle) < _MAX_IDLE:
                _idle.append(worker)
                return
        _retire(worker)

    threading.Thread(target=start, daemon=True).start()


def _checkout() -> _Worker:
    """An idle worker, else a new one: each concurrent caller gets its own, so no check waits behind another."""
    with _lock:
        # A ready worker first: one started to replace a killed one may still be importing math-verify.
        ready = [w for w in _idle if w.is_ready()]
        worker = ready[-1] if ready else (_idle[-1] if _idle else None)
        if worker is not None:
            _idle.remove(worker)
    return worker if worker is not None else _spawn()


def _checkin(worker: _Worker) -> None:
    with _lock:
        if len(_idle) < _MAX_IDLE:
            _idle.append(worker)
            return
    _retire(worker)


def warm(n: int = 1) -> None:
    """Have at least `n` workers started and idle (ready in the background), e.g. before `n` threads grade at once."""
    with _lock:
        missing = max(0, min(n, _MAX_IDLE) - len(_idle))
    for _ in range(missing):
        worker = _spawn()
        with _lock:
            _idle.append(worker)


def check(gold: str, pred: str, timeout: float = 5.0) -> tuple[str, str]:
    """math-verify's verify(parse(gold), parse(pred)) in a worker: ("match"|"mismatch"|"timeout"|"error", detail).

    Each call has a worker to itself (a pool: idle ones are reused, more are started under concurrency), so its
    wall time is bounded by its own `timeout`, whatever other threads are checking; a worker that has to be started
    first adds its import time once (about a second), which is not counted against the check.
    """
    if not timeout or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    worker = _checkout()
    try:
        worker.wait_ready()
    except RuntimeError:
        _retire(worker)
        raise
    status, detail = worker.ask(gold, pred, timeout)
    if status == "timeout" or worker.proc.poll() is not None:
        _retire(worker)
        _refill()
    else:
        _checkin(worker)
    return status, detail


@atexit.register
def shutdown() -> None:
    """Stop every worker now (they also exit on their own when this process ends)."""
    # No lock: at exit a daemon thread may still hold it.
    workers = list(_live)
    _live.clear()
    _idle.clear()
    for worker in workers:
        worker.kill()


def _forget_after_fork() -> None:
    # A forked child must not talk to (or kill) its parent's workers, nor wait on a lock another thread held.
    global _lock, _idle, _live
    _lock, _idle, _live = threading.Lock(), [], set()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
