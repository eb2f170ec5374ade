"""The packages' import graph: no module imports another that imports it back (directly or through others),
counting the imports inside functions too, and genotypes <- zoo <- reproduce (never the other way)."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Set

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("genotypes", "zoo", "reproduce")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> Dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def _imports(name: str, path: Path, known: Dict[str, Path]) -> Set[str]:
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    out: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module
            targets = []
            for alias in node.names:  # `from pkg import module` imports the module, else the package
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in known else base)
        else:
            continue
        for t in targets:
            while t and t not in known:  # `import a.b.c` of a non-module attribute: its module
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def _graph():
    known = _modules()
    return {name: _imports(name, path, known) for name, path in known.items() if not name.endswith("__main__")}


ACYCLIC = PACKAGES


def test_no_module_imports_one_that_imports_it_back():
    graph = _graph()
    cycles = []
    for start in [m for m in graph if m.split(".")[0] in ACYCLIC]:  # a module that reaches itself is on a cycle
        seen, stack = set(), [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    cycles.append(" -> ".join(trail + [start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, trail + [nxt]))
    assert not cycles, "import cycles:\n" + "\n".join(sorted(set(cycles))[:20])


def test_dependencies_point_one_way():
    rank = {pkg: i for i, pkg in enumerate(PACKAGES)}
    wrong = [f"{a} imports {b}" for a, targets in _graph().items() for b in targets
             if rank[b.split(".")[0]] > rank[a.split(".")[0]]]
    assert not wrong, wrong


def test_no_private_name_is_imported_from_another_module():
    known = _modules()
    found = []
    for name, path in known.items():
        if name.split(".")[0] not in ACYCLIC:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] in PACKAGES):
                found += [f"{name}: from {'.' * node.level}{node.module or ''} import {a.name}"
                          for a in node.names if a.name.startswith("_") and a.name != "__future__"]
    assert not found, found


MAX_LOCAL_IMPORTS = 10


def test_imports_of_the_projects_modules_are_at_the_top_but_for_a_few_that_say_why():
    """A function-local import of genotypes, zoo or reproduce is allowed only to break an import cycle, at most
    MAX_LOCAL_IMPORTS of them in all, each with a comment on the line above saying why."""
    found, unexplained = [], []
    for name, path in _modules().items():
        lines = path.read_text().splitlines()
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                ours = (isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0]
                                                              in PACKAGES)) or \
                    (isinstance(node, ast.Import) and any(a.name.split(".")[0] in PACKAGES for a in node.names))
                if ours:
                    where = f"{name}:{node.lineno}"
                    found.append(where)
                    if not lines[node.lineno - 2].strip().startswith("#"):
                        unexplained.append(where)
    assert len(found) <= MAX_LOCAL_IMPORTS, found
    assert not unexplained, f"function-local imports without a comment saying why: {unexplained}"
