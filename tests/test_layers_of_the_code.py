"""The functional core imports no MLflow, and the pipeline never imports deployment."""

from tests.test_imports import import_graph

CORE = ["pipeline.csv_input", "pipeline.data", "pipeline.params", "pipeline.model", "pipeline.metrics", "pipeline.plots",
        "pipeline.tables", "pipeline.progress", "pipeline.errors", "pipeline.collection", "pipeline.global_model",
        "pipeline.baselines"]


def reachable(graph, start):
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph.get(module, ()))
    return seen


def test_the_core_imports_no_mlflow_and_no_shell_module():
    import ast

    from tests.conftest import REPO

    graph = import_graph()
    for module in CORE:
        modules = reachable(graph, module)
        assert not modules & {"pipeline.tracking", "pipeline.registry", "pipeline.serving", "pipeline.stages"}, module
        for name in modules:
            path = REPO / (name.replace(".", "/") + ".py")
            if not path.is_file():
                path = REPO / name.replace(".", "/") / "__init__.py"
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                assert not any(n == "mlflow" or n.startswith("mlflow.") for n in names), (module, name)


def test_nothing_in_the_pipeline_imports_deploy():
    graph = import_graph()
    for module, imported in graph.items():
        if module.startswith(("pipeline", "custom_layers")):
            assert not any(name.startswith("deploy") for name in imported), module
