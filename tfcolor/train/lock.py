"""One run per ``model_dir``: a lock file naming the owner (pid, host, start time).

Two training processes on one ``model_dir`` would interleave their checkpoints and state files
(each believing its own ``ckpt-N`` is the latest), so :func:`acquire` creates
``model_dir/.lock`` atomically before anything is written and a second run refuses to start with
:class:`ModelDirLockedError`, whose message names the owner.

* Creation is atomic: the owner record is written to a private temporary file, then hard-linked
  to ``.lock`` (``link`` fails if the name exists, like ``O_CREAT | O_EXCL``, and the lock is
  never seen half-written); where hard links are unsupported, ``O_CREAT | O_EXCL`` is used.
* A lock file that cannot be parsed is stale once it is a few seconds old (a younger one may be
  being written by a racing run where hard links are unavailable).
* Stale locks: a lock of *this* host whose pid is dead, or alive but started at another time
  than the one recorded (the pid was reused; Linux ``/proc/<pid>/stat``), is stale. It is taken
  over with a warning (renamed away first, so two restarts racing for one stale lock cannot both
  win). A killed run (SIGKILL, OOM, power loss of the process) thus never blocks its restart.
* Another host's lock cannot be checked from here: the run refuses unless ``force=True``
  (``binaries/pretrain --force_unlock``), meant for a run whose host is known to be gone.
* Released (deleted, if still ours) when the run ends, whatever the outcome. The lock is
  re-entrant within one process (:func:`tfcolor.train.pretrain` holds it around the
  :class:`~tfcolor.train.Trainer`, which also takes it).
* Non-local paths (``gs://`` ...) have no atomic exclusive create through ``tf.io.gfile``: there
  the lock is checked and written non-atomically (advisory), and other hosts' locks still refuse.
"""
import contextlib
import datetime
import json
import os
import socket
import threading
import time

import tensorflow as tf
from absl import logging

from tfcolor import run_dir

_HELD = {}  # lock path -> hold count of this process
_MUTEX = threading.Lock()


class ModelDirLockedError(RuntimeError):
    """Another live run owns the model_dir."""


def _start_ticks(pid):
    """Start time of process ``pid`` in clock ticks since boot (Linux), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("utf-8", "replace")
        # Field 22; the command name (field 2) may hold spaces, so split after its ')'.
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return True
    return True


def owner_record():
    """This process's owner record (what the lock file holds)."""
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "start_ticks": _start_ticks(os.getpid()),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def _is_local(path):
    return "://" not in path


def _read(path):
    """The owner record in ``path``: a dict, {} when unreadable/garbled, None when absent."""
    try:
        if _is_local(path):
            with open(path, encoding="utf-8") as f:
                text = f.read()
        else:
            try:
                with tf.io.gfile.GFile(path) as f:
                    text = f.read()
            except tf.errors.NotFoundError:
                return None
            except tf.errors.OpError:
                return {}
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return {}
    try:
        record = json.loads(text)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def describe(record):
    if not record:
        return "an unreadable lock record"
    return (f"pid {record.get('pid')} on host {record.get('host')!r}, started "
            f"{record.get('started')}")


def stale_reason(record, host=None):
    """Why the lock ``record`` is stale (a string), or None if its owner may be alive."""
    host = host or socket.gethostname()
    if not record:
        return "its owner record is unreadable"
    if record.get("host") != host:
        return None
    pid = record.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return "its owner record has no valid pid"
    if not _pid_alive(pid):
        return f"process {pid} is not running"
    recorded, now = record.get("start_ticks"), _start_ticks(pid)
    if recorded is not None and now is not None and recorded != now:
        return f"pid {pid} now belongs to a different process"
    return None


_YOUNG_SECONDS = 5.0


def _age(path):
    """Seconds since ``path`` was last modified (0 if unknown)."""
    try:
        if _is_local(path):
            mtime = os.path.getmtime(path)
        else:
            mtime = tf.io.gfile.stat(path).mtime_nsec / 1e9
    except Exception:  # pylint: disable=broad-except
        return 0.0
    return max(0.0, time.time() - mtime)


def _create_local(path, record):
    """Atomically creates ``path`` holding ``record``; False if it already exists."""
    data = (json.dumps(record) + "\n").encode()
    tmp = f"{path}.{record['pid']}.{threading.get_ident()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError:
        pass  # no hard links here: exclusive create instead
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def _create(path, record):
    if _is_local(path):
        return _create_local(path, record)
    if tf.io.gfile.exists(path):
        return False
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(record) + "\n")
    return True


def _take_over(path, seen):
    """Removes the stale lock ``path`` whose content was ``seen``; False if it changed (another
    process took it over first)."""
    if not _is_local(path):
        tf.io.gfile.remove(path)
        return True
    aside = f"{path}.stale.{os.getpid()}"
    try:
        os.rename(path, aside)  # atomic: of two racing takers, one gets the stale file
    except FileNotFoundError:
        return True  # gone already; the retry creates it
    if _read(aside) != seen:  # a fresh lock of a racing process: put it back
        with contextlib.suppress(OSError):
            os.link(aside, path)
        os.unlink(aside)
        return False
    os.unlink(aside)
    return True


def acquire(model_dir, *, force=False, attempts=5):
    """Takes the lock of ``model_dir`` (created if needed) for this process.

    Args:
        model_dir: the run directory.
        force: take over any existing lock, also another host's (after making sure that run is
            gone).

    Returns:
        The lock file path.

    Raises:
        ModelDirLockedError: another live process (or another host) owns ``model_dir``.
    """
    if _is_local(model_dir):
        os.makedirs(model_dir, exist_ok=True)
    else:
        tf.io.gfile.makedirs(model_dir)
    path = run_dir.lock_path(model_dir)
    with _MUTEX:
        if _HELD.get(path):
            _HELD[path] += 1
            return path
        record = owner_record()
        for _ in range(attempts):
            if _create(path, record):
                _HELD[path] = 1
                return path
            seen = _read(path)
            if seen is None:
                continue  # released meanwhile
            if seen and seen.get("pid") == record["pid"] and seen.get("host") == record["host"] \
                    and seen.get("start_ticks") == record["start_ticks"]:
                _HELD[path] = 1  # ours (e.g. held by a previous call that was not released)
                return path
            if not seen and _age(path) < _YOUNG_SECONDS and not force:
                # Unreadable and new: a racing creator may still be writing it (only possible
                # without hard links or on gfile paths); look again.
                time.sleep(_YOUNG_SECONDS / attempts)
                continue
            reason = stale_reason(seen)
            if reason is None and not force:
                other_host = seen.get("host") != record["host"]
                raise ModelDirLockedError(
                    f"model_dir {model_dir} is in use by another run ({describe(seen)}; lock "
                    f"file {path}). Wait for it to finish or use another model_dir"
                    + ("; if that host's run is gone for good, rerun with --force_unlock "
                       "(Python: force_unlock=True)." if other_host else
                       "; stop it first (kill " + str(seen.get("pid")) + ")."))
            logging.warning("model_dir %s: taking over the lock of %s (%s)", model_dir,
                            describe(seen), reason or "forced")
            _take_over(path, seen)
        raise ModelDirLockedError(f"model_dir {model_dir}: could not take the lock {path} after "
                                  f"{attempts} attempts (another run starting at the same time?)")


def release(model_dir):
    """Gives up this process's hold on the lock of ``model_dir``; deletes the file at the last
    hold if it still names this process."""
    path = run_dir.lock_path(model_dir)
    with _MUTEX:
        count = _HELD.get(path, 0)
        if count > 1:
            _HELD[path] = count - 1
            return
        _HELD.pop(path, None)
        seen = _read(path)
        if seen and seen.get("pid") == os.getpid() and seen.get("host") == socket.gethostname():
            if _is_local(path):
                with contextlib.suppress(OSError):
                    os.remove(path)
            else:
                with contextlib.suppress(tf.errors.OpError):
                    tf.io.gfile.remove(path)


@contextlib.contextmanager
def hold(model_dir, *, force=False):
    """``with hold(model_dir): ...``: :func:`acquire` then :func:`release`."""
    acquire(model_dir, force=force)
    try:
        yield
    finally:
        release(model_dir)
