"""Debian packages: ``apt-get download``, unpacking only the wanted files, copyright files.

Every package is fetched once into a cache folder of ``.deb`` files (:func:`download`); only the
files matching the wanted patterns (and the package's copyright file) are unpacked, by
``dpkg-deb --fsys-tarfile`` and Python's tarfile (:func:`unpack`, cached with a marker of what
was unpacked from which ``.deb``). :func:`parse_copyright` reads a machine-readable (DEP-5)
copyright file and :func:`licence_for` finds the licence of one file in it.
"""
import fnmatch
import functools
import json
import os
import re
import shutil
import subprocess
import tarfile
from collections import defaultdict


@functools.lru_cache(maxsize=None)
def _glob_regex(pattern):
    return re.compile("".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c)
                              for c in pattern))


def path_match(path, pattern):
    """Shell-style match in which ``*`` and ``?`` never cross a ``/`` (unlike fnmatch): the
    selection patterns of a :class:`~tfcolor.corpus.sources.Source`, where ``folder/*`` means
    the files of that folder and not of its sub-folders."""
    return _glob_regex(pattern).fullmatch(path) is not None


def name_match(path, pattern):
    """Shell-style match of a whole path, case-insensitive, ``*`` crossing ``/`` (``fnmatch``
    on lower-cased strings): the patterns that name files to leave out or keep
    (``Source.exclude``, ``Source.keep_only``, the curated lists), so that ``*/name.jpg`` and
    ``*_mirror.*`` match at any depth."""
    return fnmatch.fnmatchcase(path.lower(), pattern.lower())


def deb_file(debs_dir, package):
    """The newest cached ``PACKAGE_*.deb`` in ``debs_dir`` or None."""
    hits = sorted(f for f in os.listdir(debs_dir) if f.startswith(package + "_")
                  and f.endswith(".deb")) if os.path.isdir(debs_dir) else []
    return os.path.join(debs_dir, hits[-1]) if hits else None


class DownloadError(RuntimeError):
    """``apt-get download`` failed: ``packages`` (those it was asked for: the ones not cached),
    ``returncode``, ``stderr``.

    Its message holds the exit status and the end of apt-get's error output; ``last_line`` is
    apt-get's last error line, for one-line reports.
    """

    def __init__(self, packages, returncode, stderr):
        self.packages, self.returncode, self.stderr = list(packages), returncode, stderr
        super().__init__(f"apt-get download failed ({returncode}): {stderr.strip()[-2000:]}\n"
                         "(run `apt-get update` once first)")

    @property
    def last_line(self):
        return (self.stderr.strip().splitlines() or ["no message"])[-1]


def download(packages, debs_dir, log=print):
    """``apt-get download`` every package not cached yet (no dependencies, nothing installed).

    Raises:
        DownloadError: apt-get failed (a ``RuntimeError``).
    """
    os.makedirs(debs_dir, exist_ok=True)
    missing = [p for p in packages if deb_file(debs_dir, p) is None]
    if missing:
        log(f"apt-get download {' '.join(missing)}")
        run = subprocess.run(["apt-get", "download", *missing], cwd=debs_dir,
                             capture_output=True, text=True)
        if run.returncode:
            raise DownloadError(missing, run.returncode, run.stderr)


def member_patterns(sources):
    """package -> fnmatch patterns of the files to unpack (bundles for ``!`` patterns)."""
    out = defaultdict(set)
    for s in sources:
        out[s.package].add(f"usr/share/doc/{s.package}/copyright")
        for p in s.patterns:
            out[s.package].add(p.split("!", 1)[0])
    return out


def unpack(deb, patterns, dest):
    """Unpack the regular files of ``deb`` matching ``patterns`` into ``dest`` (cached).

    Returns the package version. Uses ``dpkg-deb --fsys-tarfile`` and Python's tarfile, so only
    the wanted members are written; a marker file records what was unpacked from which .deb.
    """
    marker = os.path.join(dest, ".tfcolor-unpacked.json")
    want = {"deb": os.path.basename(deb), "patterns": sorted(patterns)}
    if os.path.exists(marker):
        with open(marker) as f:
            done = json.load(f)
        if {k: done.get(k) for k in want} == want:
            return done["version"]
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    os.makedirs(dest)
    version = subprocess.run(["dpkg-deb", "-f", deb, "Version"], capture_output=True, text=True,
                             check=True).stdout.strip()
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE)
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for member in tar:
            name = member.name[2:] if member.name.startswith("./") else member.name
            if member.isfile() and any(path_match(name, p) for p in patterns):
                target = os.path.join(dest, name)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with tar.extractfile(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    if proc.wait():
        raise RuntimeError(f"dpkg-deb --fsys-tarfile {deb} failed ({proc.returncode}).")
    with open(marker, "w") as f:
        json.dump(dict(want, version=version), f)
    return version


def package_version(dest):
    try:
        with open(os.path.join(dest, ".tfcolor-unpacked.json")) as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return "unknown"


def parse_copyright(text):
    """[(file patterns, licence)] of a machine-readable (DEP-5) copyright file, in file order.

    A file that is not DEP-5 gives one catch-all entry whose licence names what the text states.
    """
    stanzas = [s for s in re.split(r"\n\s*\n", text) if s.strip()]
    out = []
    for stanza in stanzas:
        fields, key = {}, None
        for line in stanza.splitlines():
            m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
            if m and not line[0].isspace():
                key = m.group(1).lower()
                fields[key] = m.group(2).strip()
            elif key:
                fields[key] += " " + line.strip()
        if "files" in fields and fields.get("license"):
            out.append((fields["files"].split(), fields["license"].split()[0] if fields["license"]
                        else ""))
    if out:
        return out
    found = sorted(set(re.findall(r"\b(CC[- ]BY(?:[- ]SA)?[- ]?\d(?:\.\d)?|GPL-?\d\+?|"
                                  r"LGPL-?\d(?:\.\d)?\+?|public domain|CC0)", text, re.I)))
    return [(["*"], "not DEP-5; states: " + (", ".join(found) or "see copyright"))]


def licence_for(entries, path):
    """Licence of the last stanza whose pattern matches a suffix or the name of ``path``.

    A bundle member (``BUNDLE!MEMBER``) also takes the stanzas that name its bundle file.
    """
    names = [path] + ([path.split("!", 1)[0]] if "!" in path else [])
    found = ""
    for patterns, licence in entries:
        for pat in patterns:
            for name in names:
                parts = name.replace("!", "/").split("/")
                suffixes = ["/".join(parts[i:]) for i in range(len(parts))]
                if pat == "*" or any(fnmatch.fnmatchcase(s, pat) for s in suffixes) or (
                        "*" not in pat.rsplit("/", 1)[-1]
                        and pat.rsplit("/", 1)[-1] == parts[-1]):
                    found = licence
    return found or "see copyright"
