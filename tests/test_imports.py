"""The project's own modules import one another without a circle.

Every import counts, at the top of a module or inside a function: a lazy
import that closes a circle is a circle all the same (two modules that need
each other are missing a third, smaller one).
"""

import ast

from tests.conftest import REPO

PACKAGES = ("pipeline", "custom_layers", "deploy")


def module_name(path):
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path, modules):
    """The project modules that the file at `path` imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pipeline import data` imports the module pipeline.data; `from pipeline.data import X` pipeline.data.
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            # The longest prefix that is one of ours: `pipeline.data.Windowing` → pipeline.data.
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def import_graph():
    files = {module_name(path): path for package in PACKAGES if (REPO / package).is_dir()
             for path in (REPO / package).rglob("*.py")}
    return {name: project_imports(path, files) - {name} for name, path in files.items()}


def cycles(graph):
    """Every circle as a list of modules, found by depth-first search."""
    found, state = [], {}

    def visit(module, path):
        state[module] = "open"
        for imported in sorted(graph.get(module, ())):
            if state.get(imported) == "open":
                found.append(path[path.index(imported):] + [imported])
            elif imported not in state:
                visit(imported, path + [imported])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def test_the_finder_sees_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_inside_the_project():
    graph = import_graph()
    assert "pipeline.params" in graph and "pipeline.data" in graph["pipeline.params"]
    assert cycles(graph) == []
