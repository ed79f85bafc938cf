"""The result tables of README.md and docs/ are generated from the committed results files."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_readme_tables_match_the_results_files():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "results_tables.py"),
                           "--check"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
