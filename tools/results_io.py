"""Reading and atomically writing the experiment tools' JSON files (results/, done.json)."""
import json
import os


def read_json(path):
    with open(path) as f:
        return json.load(f)


def write_json(path, payload):
    """Writes ``payload`` to ``path`` through a temporary file, so a kill leaves the old file."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
