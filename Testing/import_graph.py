"""A static import graph of the engine at function granularity, for the dependency-coverage tests.

Why function granularity: the engine imports heavy packages inside the functions that need them
(torch, segment_anything, tqdm, diffusers). A module-level graph says nothing about those; a graph
that follows *every* function of every module it touches would claim, for example, that the SAM worker
needs diffusers because ``ddic.models.resolve`` has a function that checks bundled diffusion models.

Rules (each one over-approximates what a path can import, in the way stated):

* a *scope* is a module body, a top-level function, or a class (its body and all its methods);
* entering any scope runs its module body and the package ``__init__`` s above it (import time);
* the module body imports modules (``from X import name`` loads ``X``, or ``X.name`` when that is a
  module) and runs the functions it *calls* (decorators, ``x = f()``);
* a function or class uses every name it loads: a top-level function/class of its module, or a name
  the module imported (followed to the function/class that defines it, through re-exports; for a
  constant, the functions its value names); an import inside it is used likewise;
* ``import X`` or importing a module by name uses all of ``X``;
* an import inside ``try: ... except ImportError`` is *guarded* (the code copes without it).

Every third-party top-level package reached is reported with the chain that reaches it.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Scope:
    imports: list = field(default_factory=list)  # (module, name or None, guarded, line)
    calls: set = field(default_factory=set)  # names called
    names: set = field(default_factory=set)  # names loaded (for constants: the functions they hold)


@dataclass
class Module:
    name: str
    is_package: bool
    scopes: dict  # scope name (None = module body) → Scope
    defined: dict  # top-level name → "def" | "class" | "assign"
    reexports: dict  # name → module it is imported from at module level


@dataclass(frozen=True)
class Reach:
    package: str
    guarded: bool
    chain: tuple  # ("module:scope", ...) from the entry


class ImportGraph:
    def __init__(self, root: Path, package: str = "ddic"):
        self.root = Path(root)
        self.package = package
        self._modules: dict[str, Module | None] = {}

    # -- parsing --------------------------------------------------------------------------------------------
    def file_of(self, name: str) -> Path | None:
        path = self.root / Path(*name.split("."))
        if (path / "__init__.py").is_file():
            return path / "__init__.py"
        if path.with_suffix(".py").is_file():
            return path.with_suffix(".py")
        return None

    def module(self, name: str) -> Module | None:
        if name not in self._modules:
            path = self.file_of(name)
            self._modules[name] = None if path is None else self._parse(name, path)
        return self._modules[name]

    def _resolve(self, module: str, is_package: bool, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        parts = module.split(".")
        base = parts if is_package else parts[:-1]
        base = base[:len(base) - node.level + 1]
        return ".".join(base + ([node.module] if node.module else []))

    def _parse(self, name: str, path: Path) -> Module:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        is_package = path.name == "__init__.py"
        scopes: dict = {None: Scope()}
        defined, reexports = {}, {}

        def guarded_by_import_error(handlers) -> bool:
            text = " ".join(ast.unparse(h.type) for h in handlers if h.type is not None)
            return "ImportError" in text or "ModuleNotFoundError" in text or any(h.type is None for h in handlers)

        def collect(node, scope: Scope, guarded: bool, top: bool):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    scope.imports.append((alias.name, None, guarded, node.lineno))
            elif isinstance(node, ast.ImportFrom):
                target = self._resolve(name, is_package, node)
                for alias in node.names:
                    scope.imports.append((target, alias.name, guarded, node.lineno))
                    if top:
                        reexports[alias.asname or alias.name] = (target, alias.name)
            elif isinstance(node, ast.Call):
                root = node.func
                while isinstance(root, ast.Attribute):
                    root = root.value
                if isinstance(root, ast.Name):
                    scope.calls.add(root.id)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                scope.names.add(node.id)
            if isinstance(node, ast.Try):
                inner = guarded or guarded_by_import_error(node.handlers)
                for child in node.body:
                    collect(child, scope, inner, top)
                for child in [*node.handlers, *node.orelse, *node.finalbody]:
                    collect(child, scope, guarded, top)
                return
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                    continue
                collect(child, scope, guarded, top and not isinstance(node, (ast.FunctionDef, ast.ClassDef)))

        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                defined[node.name] = "def"
                scope = scopes.setdefault(node.name, Scope())
                for child in node.body:
                    collect(child, scope, False, False)
                for deco in node.decorator_list:
                    collect(deco, scopes[None], False, True)
                    scopes[None].calls |= {n.id for n in ast.walk(deco) if isinstance(n, ast.Name)}
            elif isinstance(node, ast.ClassDef):
                defined[node.name] = "class"
                scope = scopes.setdefault(node.name, Scope())
                collect(node, scope, False, False)  # body and methods: a class counts as a whole
            else:
                if isinstance(node, (ast.Assign, ast.AnnAssign)):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for t in targets:
                        if isinstance(t, ast.Name):
                            defined[t.id] = "assign"
                            scopes.setdefault(f"={t.id}", Scope())
                            collect(node.value, scopes[f"={t.id}"], False, False) if node.value else None
                collect(node, scopes[None], False, True)
        return Module(name, is_package, scopes, defined, reexports)

    # -- reaching -------------------------------------------------------------------------------------------
    def reach(self, entries, run_only=()) -> list[Reach]:
        """Third-party packages reachable from ``entries`` ((module, scope) with scope None, a name or "*").

        ``run_only``: (module, function) pairs that are run but whose other uses are not followed, only
        their calls — e.g. the ``register`` of every subcommand, which ``ddic`` runs to build its parser
        and which merely stores a reference to the subcommand's ``run``.
        """
        found: dict = {}
        seen: set = set()
        run_only = set(run_only)
        stack = [(m, s, ()) for m, s in [*entries, *run_only]]
        while stack:
            module_name, scope_name, chain = stack.pop()
            key = (module_name, scope_name)
            if key in seen:
                continue
            seen.add(key)
            module = self.module(module_name)
            if module is None:
                continue
            here = chain + (f"{module_name}:{scope_name or '<module>'}",)
            if scope_name == "*":
                stack.extend((module_name, s, here) for s in module.scopes if not str(s).startswith("="))
                continue
            if scope_name is not None:
                stack.append((module_name, None, here))
            else:
                parts = module_name.split(".")
                stack.extend((".".join(parts[:i]), None, here) for i in range(1, len(parts)))
            scope = module.scopes.get(scope_name)
            if scope is None:
                continue
            body = scope_name is None or (module_name, scope_name) in run_only
            for used in (scope.calls if body else scope.names | scope.calls):
                if module.defined.get(used) in ("def", "class"):
                    if (module_name, scope_name) in run_only:
                        run_only.add((module_name, used))  # helpers of a run-only function are run-only too
                    stack.append((module_name, used, here))
                elif module.defined.get(used) == "assign":
                    stack.append((module_name, f"={used}", here))
                elif not body and used in module.reexports:
                    source, original = module.reexports[used]
                    if source.split(".")[0] == self.package:
                        stack.extend(self._targets(source, original, here, use=True))
            for target, name, guarded, line in scope.imports:
                top = target.split(".")[0]
                if top != self.package:
                    if top and top not in sys.stdlib_module_names and top != "__future__":
                        previous = found.get(top)
                        if previous is None or (previous.guarded and not guarded):
                            found[top] = Reach(top, guarded, here + (f"line {line}: {target}",))
                    continue
                stack.extend(self._targets(target, name, here, use=not body))
        return sorted(found.values(), key=lambda r: r.package)

    def _targets(self, target: str, name: str | None, chain: tuple, use: bool) -> list:
        """Scopes entered by importing ``name`` from ``target``; ``use``: the name is used, not just imported."""
        if name is None or name == "*" or self.file_of(f"{target}.{name}") is not None:
            whole = target if name in (None, "*") else f"{target}.{name}"
            return [(whole, "*" if use or name in (None, "*") else None, chain)]
        if not use:
            return [(target, None, chain)]
        module = self.module(target)
        if module is None:
            return []
        kind = module.defined.get(name)
        if kind in ("def", "class"):
            return [(target, name, chain)]
        if kind == "assign":
            return [(target, f"={name}", chain)]
        if name in module.reexports:
            source, original = module.reexports[name]
            return [(target, None, chain), *self._targets(source, original, chain, use)]
        return [(target, None, chain)]
