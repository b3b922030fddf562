"""The package's shape: imports point down the stack of concern packages, and nothing imports in a circle.

Every `import` of a featcache module counts, also those inside functions or under TYPE_CHECKING: a lazy import
is still a dependency. The stack, bottom first, is LAYERS; a module belongs to the most specific entry that
names it or a package above it. Inside one layer any direction is allowed, but no circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent / "featcache"

# Bottom first: a module may import from its own layer (without a circle) and from the layers below it.
LAYERS = (
    ("featcache.version", "featcache.errors", "featcache.failpoints", "featcache.files", "featcache.user_text"),
    (
        "featcache.extractors.catalog",
    ),  # names and dims of the extractors, no Keras: the configs resolve image sizes with it
    ("featcache.config",),
    ("featcache.video",),
    ("featcache.extractors",),
    ("featcache.cache",),
    ("featcache.text",),  # text towers and zero-shot scores: above the cache, below training (--init-from-text)
    ("featcache.embedding",),
    ("featcache.search",),  # pooled vectors, nearest videos, leakage audit: below training, which warns with it
    ("featcache.training",),
    ("featcache.inference",),
    ("featcache.report",),  # HTML pages over what evaluate, compare, info and predict compute
    ("featcache.pipelines",),
    ("featcache.cli",),
    ("featcache", "featcache.__main__"),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE_ROOT.rglob("*.py")}


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The featcache modules `path` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from featcache.cache import format1` imports the submodule;
            # `from featcache.cache import Cache` the package.
            candidates = [
                f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                for alias in node.names
            ]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found.update(name for name in candidates if name in modules)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imported_modules(path, set(modules)) - {name} for name, path in modules.items()}


def layer_of(module: str) -> int:
    best, best_length = None, -1
    for number, members in enumerate(LAYERS):
        for member in members:
            if (module == member or module.startswith(member + ".")) and len(member) > best_length:
                best, best_length = number, len(member)
    assert best is not None, f"{module} is in no layer of LAYERS: add it"
    return best


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules (first == last), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module)
            if cycle:
                return cycle
    return None


def test_every_module_has_a_layer() -> None:
    for module in all_modules():
        layer_of(module)


def test_imports_only_point_down_the_stack() -> None:
    upward = [
        f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
        for module, targets in import_graph().items()
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]
    assert not upward, "imports that run up the stack:\n" + "\n".join(upward)


def test_no_import_circles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_checker_finds_circles_and_upward_imports() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert (
        layer_of("featcache.cache.reader")
        > layer_of("featcache.extractors.registry")
        > layer_of("featcache.extractors.catalog")
    )
    assert layer_of("featcache.cli.common") > layer_of("featcache.training.train")
