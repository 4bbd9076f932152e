"""The package's layering, read from the source with `ast` (nothing is imported).

- the import graph of the basemap.* modules (module-level AND function-level imports, model/
  included as basemap.model) has no cycle;
- no function imports a basemap module, except the deliberate deferrals of heavy optional
  dependencies below, each said so by a comment just above it;
- only basemap/config.py reads environment variables;
- no module is over 400 lines, no function over 60;
- the network and its weights (basemap.model outside basemap.model.training), and everything
  else but the CLI, never reach the training code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: (importing module, imported module): function-level imports kept on purpose, because the
#: imported module pulls in a heavy optional dependency (torch) that most runs never need.
DEFERRED = {
    ("basemap.render.inference", "basemap.model.unet"),  # torch
    ("basemap.render.inference", "basemap.model.weights"),  # torch
    ("basemap.cli.model", "basemap.model.training.losses"),  # torch
    ("basemap.cli.model", "basemap.model.training.train"),  # torch
    ("basemap.cli.model", "basemap.model.unet"),  # torch
    ("basemap.cli.model", "basemap.model.weights"),  # torch (--init)
}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for basemap/ and model/ (installed as basemap.model)."""
    found = {}
    for base, prefix in ((ROOT / "basemap", "basemap"), (ROOT / "model", "basemap.model")):
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([prefix, *parts])] = path
    return found


MODULES = _modules()


def _imports(path: Path, name: str):
    """(imported basemap module, line, at module level?) for every import statement of a file."""
    tree = ast.parse(path.read_text(), str(path))
    top = {id(n) for n in tree.body}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            # `from basemap.world import plan`: the submodule if there is one, else the module
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                       for a in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] == "basemap":
                while target not in MODULES and "." in target:
                    target = target.rpartition(".")[0]
                yield target, node.lineno, id(node) in top


def _graph() -> dict[str, set[str]]:
    return {name: {t for t, _, _ in _imports(path, name) if t != name}
            for name, path in MODULES.items()}


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_the_graph_sees_the_pipeline():
    """The check above is not vacuous: the graph holds the edges the pipeline is made of."""
    graph = _graph()
    assert "basemap.pipeline.block_task" in graph["basemap.pipeline.graph"]
    assert "basemap.pipeline.ledger" in graph["basemap.pipeline.block_task"]
    assert "basemap.grid" in graph["basemap.render.classic"]
    assert "basemap.render.windows" in graph["basemap.render.unet"]
    assert "basemap.render.base" not in graph["basemap.grid"]
    assert len(MODULES) > 50


def _reached(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module `start` imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_only_the_cli_reaches_the_training_code():
    """Inference loads the network and its weights (basemap.model.unet, .tone, .weights) without
    the training code; so does every other module but the CLI's (`basemap pairs`, `train`)."""
    graph = _graph()
    training = "basemap.model.training"
    network = {n for n in MODULES if n.startswith("basemap.model") and not n.startswith(training)}
    assert {"basemap.model.unet", "basemap.model.tone", "basemap.model.weights"} <= network
    reaching = {name: sorted(t for t in _reached(graph, name) if t.startswith(training))
                for name in MODULES
                if not name.startswith((training, "basemap.cli"))}  # fmt: skip
    assert not {n: r for n, r in reaching.items() if r}
    assert any(t.startswith(training) for t in graph["basemap.cli.model"])  # not vacuous


def test_no_hidden_imports_of_sibling_modules():
    """Function-level imports of basemap modules only where DEFERRED says, each with a comment
    just above it saying it is deferred on purpose."""
    found = set()
    problems = []
    for name, path in MODULES.items():
        lines = path.read_text().splitlines()
        for target, line, top in _imports(path, name):
            if top:
                continue
            found.add((name, target))
            if (name, target) not in DEFERRED:
                problems.append(f"{path.relative_to(ROOT)}:{line} imports {target} in a function")
            elif not any("deferred on purpose" in t for t in lines[max(0, line - 7):line - 1]):
                problems.append(f"{path.relative_to(ROOT)}:{line}: say why it is deferred")
    assert not problems, "\n".join(problems)
    assert found == DEFERRED, f"DEFERRED lists imports that are gone: {DEFERRED - found}"


def _reads_environment(tree: ast.AST) -> list[int]:
    return [n.lineno for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
            and n.value.id == "os" and n.attr in ("environ", "getenv", "environb")]


def test_only_config_reads_the_environment():
    readers = {name: lines for name, path in MODULES.items()
               if (lines := _reads_environment(ast.parse(path.read_text())))}
    assert set(readers) == {"basemap.config"}, readers


def test_every_variable_config_reads_is_in_the_readme():
    from basemap import config

    readme = (ROOT / "README.md").read_text()
    missing = [v for v in config.ENVIRONMENT if f"`{v}`" not in readme]
    assert not missing, f"README.md does not document {missing}"


#: The share of function parameters (self and cls aside) that must carry a type annotation.
MIN_TYPED_PARAMETERS = 0.90


def test_parameters_are_typed():
    """The data passed between stages says what it is: >= 90 % of parameters annotated."""
    total = typed = 0
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                params = [*a.posonlyargs, *a.args, *a.kwonlyargs,
                          *(p for p in (a.vararg, a.kwarg) if p is not None)]
                params = [p for p in params if p.arg not in ("self", "cls")]
                total += len(params)
                typed += sum(p.annotation is not None for p in params)
    assert typed / total >= MIN_TYPED_PARAMETERS, f"{typed} of {total} parameters typed"


def test_modules_and_functions_stay_small():
    big = []
    for name, path in MODULES.items():
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            big.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    big.append(f"{name}.{node.name}: {length} lines")
    assert not big, big


@pytest.mark.parametrize(("marker", "home"), [
    ("cog_translate(", "basemap.output.cog"),  # the one COG writer
    ('"image/webp"', "basemap.output.media"),  # the one media-type table
    ('"tilejson": "3.0.0"', "basemap.output.tilejson"),  # the one TileJSON builder
    ("// 2, y // 2", "basemap.output.pyramid"),  # the one pyramid level loop
    ("os.environ", "basemap.config"),  # the one reader of the environment
    ("0.04045", "basemap.colour"),  # the one sRGB decoding (CIELAB, CIEDE2000 beside it)
])
def test_one_implementation_of_each_thing(marker, home):
    found = {name for name, path in MODULES.items() if marker in path.read_text()}
    assert found == {home}
