"""Temporary files of killed processes (tfcolor.leftovers): removed when their process is dead,
kept while it lives; the removals by colorize_files and by an export."""
import os
import subprocess

from tfcolor import export, image_files, leftovers


def dead_pid():
    """The id of a process that existed and is gone (a short child, started and reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    assert not leftovers.pid_alive(child.pid)
    return child.pid


def test_pid_alive():
    assert leftovers.pid_alive(os.getpid())
    assert leftovers.pid_alive(1)  # init: alive, whoever owns it
    assert not leftovers.pid_alive(dead_pid())
    assert not leftovers.pid_alive(0)


def test_only_the_leftovers_of_dead_processes_are_removed(tmp_path):
    dead, live = dead_pid(), os.getpid()
    for name in (f".a.png.{dead}.tmp", f".b.png.{live}.tmp", "c.png", f".d.png.{dead}.tmpx"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / f".e.png.{dead}.tmp").mkdir()
    pattern = image_files.TEMPORARY_PNG
    assert leftovers.dead_leftovers(str(tmp_path), pattern) == [f".a.png.{dead}.tmp",
                                                                f".e.png.{dead}.tmp"]
    removed = leftovers.remove_dead(str(tmp_path), pattern)
    assert sorted(os.path.basename(p) for p in removed) == [f".a.png.{dead}.tmp",
                                                            f".e.png.{dead}.tmp"]
    assert sorted(os.listdir(tmp_path)) == sorted([f".b.png.{live}.tmp", "c.png",
                                                   f".d.png.{dead}.tmpx"])
    assert leftovers.remove_dead(str(tmp_path / "missing"), pattern) == []


def test_colorize_files_removes_dead_temporary_pngs_at_start(tmp_path):
    dead, live = dead_pid(), os.getpid()
    out = tmp_path / "out"
    out.mkdir()
    (out / f".photo.png.{dead}.tmp").write_bytes(b"half a PNG")
    (out / f".other.png.{live}.tmp").write_bytes(b"being written")
    result = image_files.colorize_files(None, [], str(out))
    assert result["written"] == []
    assert os.listdir(out) == [f".other.png.{live}.tmp"]


def test_an_export_removes_what_killed_exports_left(tmp_path):
    dead, live = dead_pid(), os.getpid()
    target = tmp_path / "export"
    target.mkdir()
    (target / "saved_model.pb").write_bytes(b"the current export")
    for name in (f"export.tmp-{dead}", f"export.old-{dead}", f"export.tmp-{live}"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "saved_model.pb").write_bytes(b"partial")
    removed = export.clean_leftovers(str(target))
    assert sorted(os.path.basename(p) for p in removed) == [f"export.old-{dead}",
                                                            f"export.tmp-{dead}"]
    assert sorted(os.listdir(tmp_path)) == ["export", f"export.tmp-{live}"]
    assert (target / "saved_model.pb").read_bytes() == b"the current export"


def test_an_earlier_export_moved_aside_by_a_killed_export_is_restored(tmp_path):
    dead = dead_pid()
    old = tmp_path / f"export.old-{dead}"
    old.mkdir()
    (old / "saved_model.pb").write_bytes(b"the earlier export")
    (tmp_path / f"export.tmp-{dead}").mkdir()
    export.clean_leftovers(str(tmp_path / "export") + "/")
    assert sorted(os.listdir(tmp_path)) == ["export"]
    assert (tmp_path / "export" / "saved_model.pb").read_bytes() == b"the earlier export"
