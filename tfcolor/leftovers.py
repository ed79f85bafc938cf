"""Temporary files and folders of killed processes: found by the process id in their name, removed.

tfcolor writes its outputs under a temporary name that carries the writer's process id, then
renames them into place: ``colorize`` writes ``.NAME.png.PID.tmp`` in its output folder
(``tfcolor.image_files.save_png``), an export writes ``EXPORT_DIR.tmp-PID/`` next to the export
and moves an earlier export aside as ``EXPORT_DIR.old-PID/`` while it renames the new one in
(``tfcolor.export.export_saved_model``). A process killed at the wrong moment leaves these
behind. The next run that writes to the same place removes those whose process is no longer
alive on this host (:func:`remove_dead`), and logs one line per removal; those of live processes
(another export running at the same time) are left alone. An ``EXPORT_DIR.old-PID/`` whose export
never replaced it (the process died between the two renames) is the earlier export: it is
renamed back to ``EXPORT_DIR`` rather than deleted.

Process ids are those of this host: a folder that processes of several hosts write to at the
same time (a network file system) could see another host's live temporary files removed, as it
would see their outputs interleaved anyway.
"""
import logging
import os
import re
import shutil

__all__ = ["pid_alive", "dead_leftovers", "remove_dead"]

logger = logging.getLogger(__name__)


def pid_alive(pid):
    """True if a process ``pid`` exists on this host (whoever owns it)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by someone else
        return True
    return True


def dead_leftovers(folder, pattern):
    """Names in ``folder`` that match the regular expression ``pattern`` (its group ``pid`` is
    the writer's process id) and whose writer is dead; sorted. A missing folder has none."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    found = []
    for name in names:
        match = re.fullmatch(pattern, name)
        if match and match.group("pid").isdigit() and not pid_alive(int(match.group("pid"))):
            found.append(name)
    return sorted(found)


def remove_dead(folder, pattern, what="temporary file"):
    """Removes the :func:`dead_leftovers` of ``folder`` (files or folders); returns their paths.

    A leftover that cannot be removed (permissions, a read-only disk) is logged and kept: the
    caller's own writes will then report the problem.
    """
    removed = []
    for name in dead_leftovers(folder, pattern):
        path = os.path.join(folder, name)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        except OSError as e:
            logger.warning("could not remove %s, left by a killed process: %s", path, e)
            continue
        logger.warning("removed %s, a %s left by a killed process", path, what)
        removed.append(path)
    return removed
