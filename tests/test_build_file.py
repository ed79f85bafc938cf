"""The Bazel BUILD file names every module, binary and test, and only files that exist.

Bazel cannot fetch its Python rules offline here, so the BUILD file is checked by parsing it as
Starlark (a Python subset) instead of by running ``bazel build``.
"""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _targets():
    tree = ast.parse((ROOT / "BUILD").read_text(), filename="BUILD")
    targets = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in ("py_library", "py_binary", "py_test"):
                targets.append((node.func.id, {k.arg: _value(k.value) for k in node.keywords}))
    return targets


def _value(node):
    """Literal values; ``requirement("x")`` calls in deps become ``"@pip//x"``."""
    if isinstance(node, ast.List):
        return [_value(e) for e in node.elts]
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "requirement"):
        return "@pip//" + ast.literal_eval(node.args[0])
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "glob":
        return sorted(p.relative_to(ROOT).as_posix() for pattern in ast.literal_eval(node.args[0])
                      for p in ROOT.glob(pattern))
    return ast.literal_eval(node)


def _srcs(kind):
    out = set()
    for rule, kw in _targets():
        if rule == kind:
            out.update(kw.get("srcs", []))
    return out


def test_target_names_are_unique():
    names = [kw["name"] for _, kw in _targets()]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_every_library_module_has_a_target():
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tfcolor").rglob("*.py")}
    missing = modules - _srcs("py_library")
    assert not missing, f"modules without a py_library target: {sorted(missing)}"


def test_every_binary_has_a_target():
    binaries = {p.relative_to(ROOT).as_posix() for p in (ROOT / "binaries").glob("*.py")
                            if p.name != "__init__.py" and not p.name.startswith("_")}
    declared = _srcs("py_binary") | _srcs("py_library")
    mains = {kw.get("main", kw["srcs"][0]) for rule, kw in _targets() if rule == "py_binary"}
    missing = binaries - declared
    assert not missing, f"binaries without a target: {sorted(missing)}"
    assert mains <= binaries | _srcs("py_binary")


def test_every_test_has_a_target():
    tests = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").rglob("test_*.py")}
    missing = tests - _srcs("py_test")
    assert not missing, f"tests without a py_test target: {sorted(missing)}"
    for rule, kw in _targets():
        if rule == "py_test":
            test_file = [s for s in kw["srcs"] if s != kw["main"]]
            assert kw["args"] == [f"$(location {test_file[0]})"], kw["name"]


def test_internal_deps_follow_imports():
    """A target that imports a tfcolor module depends on that module's target (a module's own
    enclosing packages excepted: importing the module loads them, and depending on them would
    be a cycle when a package's __init__ imports the module)."""
    by_src = {kw["srcs"][0]: kw for _, kw in _targets()}
    lib_of = {s: ":" + kw["name"] for rule, kw in _targets() if rule == "py_library"
              for s in kw["srcs"]}
    missing = []
    for src, kw in by_src.items():
        path = ROOT / src
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                base = ROOT / node.module.replace(".", "/")
                names = [f"{node.module}.{a.name}"
                         if ((base / a.name).with_suffix(".py").is_file()
                             or (base / a.name / "__init__.py").is_file()) else node.module
                         for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            own = src[:-len(".py")].replace("/", ".")
            for name in names:
                if not name.startswith("tfcolor.") or own.startswith(name + "."):
                    continue
                base = ROOT / name.replace(".", "/")
                for cand in (base.with_suffix(".py"), base / "__init__.py"):
                    dep = lib_of.get(cand.relative_to(ROOT).as_posix())
                    if dep and cand.as_posix() != path.as_posix() and dep not in kw.get("deps", []):
                        missing.append((kw["name"], dep))
    assert not missing, f"imports without deps: {sorted(set(missing))}"


@pytest.mark.parametrize("rule", ["py_library", "py_binary", "py_test"])
def test_every_named_file_exists(rule):
    absent = sorted(s for s in _srcs(rule) if not (ROOT / s).is_file())
    assert not absent, f"{rule} targets name missing files: {absent}"


def test_no_dependency_cycles():
    """Bazel rejects cycles; find one by depth-first search over the internal deps."""
    graph = {":" + kw["name"]: [d for d in kw.get("deps", []) if d.startswith(":")]
             for _, kw in _targets()}
    state = {}

    def visit(node, path):
        state[node] = "open"
        for dep in graph.get(node, []):
            if state.get(dep) == "open":
                raise AssertionError("dependency cycle: " + " -> ".join(path + [node, dep]))
            if dep not in state:
                visit(dep, path + [node])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [])


def test_package_data_is_declared():
    """The embedded photos ship with the data library (Bazel ``data``), and they exist."""
    data = [kw.get("data", []) for _, kw in _targets() if "tfcolor/data/embedded.py" in kw["srcs"]]
    assert data and any(f.endswith(".jpg") for f in data[0]), data
    assert "tfcolor/assets/photos/ATTRIBUTION.txt" in data[0]


def test_deps_point_at_declared_targets():
    names = {":" + kw["name"] for _, kw in _targets()} | {"//:" + kw["name"] for _, kw in _targets()}
    bad = []
    for _, kw in _targets():
        for dep in kw.get("deps", []):
            if dep.startswith((":", "//:")) and dep not in names:
                bad.append((kw["name"], dep))
    assert not bad, f"deps on undeclared targets: {bad}"
