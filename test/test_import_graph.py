"""The layering rules on the import graph of the project's own modules (every import statement, also the
ones inside functions): the base layer (runespoor_common) imports neither side; online code (the edge and
cloud packages) never imports a command (runespoor_tools); and no module imports itself round a cycle."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ('runespoor_common', 'runespoor_edge', 'runespoor_cloud', 'runespoor_tools')


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob('*.py'))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports (absolute and relative, `from pkg import module` resolved)."""
    is_pkg = path.name == '__init__.py'
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split('.') if is_pkg else name.split('.')[:-1]
                base = base[:len(base) - (node.level - 1)]
                stem = '.'.join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ''
            targets = [f'{stem}.{a.name}' for a in node.names] + [stem]
        else:
            continue
        for t in targets:
            while t and t not in known:  # `import a.b.c` names a.b.c; `from a import f` names a.f -> a
                t = t.rpartition('.')[0]
            if t and t != name:
                out.add(t)
    return out


def graph() -> dict[str, set[str]]:
    mods = project_modules()
    known = set(mods)
    return {n: imports_of(n, p, known) for n, p in mods.items()}


def layer(module: str) -> str:
    return module.split('.')[0]


def test_the_graph_covers_every_package():
    g = graph()
    assert {layer(m) for m in g} == set(PACKAGES)
    assert {'runespoor_cloud.inference', 'runespoor_cloud.tail'} <= g['runespoor_cloud.chain']  # real edges


def test_common_imports_neither_side_nor_a_command():
    bad = {(m, t) for m, ts in graph().items() if layer(m) == 'runespoor_common'
           for t in ts if layer(t) != 'runespoor_common'}
    assert not bad, sorted(bad)


def test_online_code_never_imports_a_command():
    bad = {(m, t) for m, ts in graph().items() if layer(m) in ('runespoor_edge', 'runespoor_cloud')
           for t in ts if layer(t) == 'runespoor_tools'}
    assert not bad, sorted(bad)


def test_no_import_cycles():
    """Tarjan's strongly connected components: every one must be a single module. A package's
    __init__ importing its own submodules (a registry) is not a cycle when the submodule does not
    import back."""
    g = graph()
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    assert not cycles, cycles
