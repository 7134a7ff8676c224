"""hookwall's own import-linter contracts (``make lint``; see ARCHITECTURE.md).

``roles``: every module has one role, and imports only modules of its own role or of a role
below it. The roles are listed lowest first, each with the module patterns that have it
(``*`` is one name, ``**`` any number, ``fallback`` the role of whatever no pattern names;
a role may go on over several lines, each starting with its name).
This is the dependency direction of the project, stated once and checked on every import,
including imports under ``TYPE_CHECKING``.

``acyclic_modules``: no cycle in the graph of hookwall's modules: a cycle found is printed
as the chain of imports that closes it, with line numbers.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import grimp
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


def _pattern(text: str) -> re.Pattern[str]:
    parts = []
    for name in text.strip().split("."):
        parts.append({"*": r"[^.]+", "**": r"[^.]+(?:\.[^.]+)*"}.get(name, re.escape(name)))
    return re.compile(r"\.".join(parts) + r"\Z")


class Roles:
    """The ordered roles of a ``roles`` contract, and which role a module has."""

    def __init__(self, lines: list[str]) -> None:
        self.names: list[str] = []
        self.patterns: list[tuple[re.Pattern[str], int]] = []
        self.fallback: int | None = None
        for line in lines:
            name, _, patterns = line.partition(":")
            if not self.names or self.names[-1] != name.strip():  # a role may take lines
                self.names.append(name.strip())
            rank = len(self.names) - 1
            for text in patterns.split(","):
                if text.strip() == "fallback":
                    self.fallback = rank
                elif text.strip():
                    self.patterns.append((_pattern(text), rank))

    def rank(self, module: str) -> int | None:
        for pattern, rank in self.patterns:
            if pattern.match(module):
                return rank
        return self.fallback


class RolesContract(Contract):
    """No module imports a module of a higher role."""

    roles = fields.ListField(subfield=fields.StringField())
    root = fields.StringField()

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        roles = Roles(list(self.roles))  # type: ignore[call-overload]
        root = str(self.root)
        upward = []
        for importer in sorted(m for m in graph.modules if _inside(m, root)):
            low = roles.rank(importer)
            for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                high = roles.rank(imported) if _inside(imported, root) else None
                if low is None or high is None or high <= low:
                    continue
                lines = _lines(graph, importer, imported)
                upward.append((importer, roles.names[low], imported, roles.names[high], lines))
        return ContractCheck(kept=not upward, metadata={"upward": upward})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for importer, low, imported, high, lines in check.metadata["upward"]:
            output.print_error(
                f"{importer} ({low}) imports {imported} ({high}), a higher role (l.{lines})",
                bold=False,
            )
            output.new_line()


class AcyclicModulesContract(Contract):
    """No chain of imports leads from a module back to itself."""

    root = fields.StringField()

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        root = str(self.root)
        modules = sorted(m for m in graph.modules if _inside(m, root))
        edges = {
            m: sorted(i for i in graph.find_modules_directly_imported_by(m) if _inside(i, root))
            for m in modules
        }
        cycles = []
        for component in _strongly_connected(modules, edges):
            if len(component) > 1:
                cycles.append(_one_cycle(component, edges, graph))
        return ContractCheck(kept=not cycles, metadata={"cycles": cycles})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for cycle in check.metadata["cycles"]:
            output.print_error("A cycle:", bold=True)
            output.new_line()
            for importer, imported, lines in cycle:
                output.indent_cursor()
                output.print_error(f"{importer} -> {imported} (l.{lines})", bold=False)
            output.new_line()


def _inside(module: str, root: str) -> bool:
    return module == root or module.startswith(root + ".")


def _lines(graph: grimp.ImportGraph, importer: str, imported: str) -> str:
    details = graph.get_import_details(importer=importer, imported=imported)
    return ", ".join(str(d["line_number"]) for d in details) or "?"


def _strongly_connected(nodes: list[str], edges: dict[str, list[str]]) -> Iterator[set[str]]:
    """Tarjan's algorithm, iterative (a deep package must not hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    for start in nodes:
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            successors = edges.get(node, [])
            if child < len(successors):
                work.append((node, child + 1))
                succ = successors[child]
                if succ not in index:
                    work.append((succ, 0))
                elif succ in on_stack:
                    low[node] = min(low[node], index[succ])
                continue
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                yield component
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])


def _one_cycle(
    component: set[str], edges: dict[str, list[str]], graph: grimp.ImportGraph
) -> list[tuple[str, str, str]]:
    """The shortest cycle through the component's first module (breadth-first)."""
    start = min(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for succ in edges[node]:
                if succ not in component:
                    continue
                if succ == start:
                    chain = [node]
                    while chain[-1] != start:
                        chain.append(previous[chain[-1]])
                    path = [start, *reversed(chain[:-1]), start]
                    return [(a, b, _lines(graph, a, b)) for a, b in itertools.pairwise(path)]
                if succ not in previous:
                    previous[succ] = node
                    following.append(succ)
        frontier = following
    return []
