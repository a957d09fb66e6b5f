"""Import-linter contracts the built-in ones cannot say.

``allowed_imports``: "these modules import only the standard library and the modules listed", for refd (stdlib
only at boot) and for refd's runtime (stdlib and leaf utilities). A forbidden contract names what may not be
imported; this one names what may, so a new third-party import or a new upward edge fails ``nox -s lint``
without anyone adding it to a list first. ``used_only_through``: "outside this package, it is imported only by
these edges", which keeps the harness's few in-process uses of refd one way and listed. Direct imports are
checked, function-level and ``TYPE_CHECKING`` ones included (grimp reports them all).
"""

from __future__ import annotations

import sys

from grimp import ImportGraph
from importlinter.application import contract_utils, output
from importlinter.application.contract_utils import AlertLevel
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck
from importlinter.domain.helpers import module_expressions_to_modules, resolve_import_expressions

__all__ = ["AllowedImportsContract", "UsedOnlyThroughContract"]


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


class AllowedImportsContract(Contract):
    """``source_modules`` (packages, with their descendants) import only the standard library and
    ``allowed_modules`` (packages too). ``newer_stdlib`` names standard modules of Pythons newer than the one
    linting (imported behind a version guard); ``ignore_imports`` works as in the built-in contracts."""

    type_name = "allowed_imports"

    source_modules = fields.SetField(subfield=fields.ModuleExpressionField())
    allowed_modules = fields.SetField(subfield=fields.ModuleExpressionField(), required=False)
    newer_stdlib = fields.SetField(subfield=fields.StringField(), required=False)
    ignore_imports = fields.SetField(subfield=fields.ImportExpressionField(), required=False)
    unmatched_ignore_imports_alerting = fields.EnumField(AlertLevel, default=AlertLevel.ERROR)

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        removal = contract_utils.remove_ignored_imports_and_report(
            graph=graph,
            ignore_imports=self.ignore_imports,  # type: ignore[arg-type]
            unmatched_alerting=self.unmatched_ignore_imports_alerting,  # type: ignore[arg-type]
        )
        sources = [m.name for m in module_expressions_to_modules(graph, self.source_modules)]  # type: ignore[arg-type]
        allowed = [m.name for m in module_expressions_to_modules(graph, self.allowed_modules or [])]  # type: ignore[arg-type]
        stdlib = set(sys.stdlib_module_names) | set(self.newer_stdlib or [])  # type: ignore[arg-type]
        importers = sorted({m for m in graph.modules if any(_within(m, s) for s in sources)})
        bad: list[dict[str, object]] = []
        for importer in importers:
            for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                if imported.split(".")[0] in stdlib:
                    continue
                if any(_within(imported, a) for a in allowed):
                    continue
                details = graph.get_import_details(importer=importer, imported=imported)
                lines = sorted({int(d["line_number"]) for d in details})
                bad.append({"importer": importer, "imported": imported, "lines": lines})
        return ContractCheck(
            kept=not bad,
            warnings=list(removal.warnings),
            ignored_import_count=removal.ignored_import_count,
            metadata={"bad": bad, "allowed": allowed},
        )

    def render_broken_contract(self, check: ContractCheck) -> None:
        allowed = ", ".join(check.metadata["allowed"]) or "nothing else"
        output.print(f"Only the standard library and {allowed} may be imported:")
        output.new_line()
        for entry in check.metadata["bad"]:
            lines = ", ".join(f"l.{n}" for n in entry["lines"])
            output.print_error(f"-   {entry['importer']} -> {entry['imported']} ({lines})")
        output.new_line()


class UsedOnlyThroughContract(Contract):
    """Modules of ``users`` (packages, with their descendants) outside ``package`` import ``package`` only by
    the edges ``allowed_imports`` lists (``importer -> imported``, wildcards as in ``ignore_imports``).

    This makes a dependency one way by contract where a layers contract cannot say it: refd stands alone
    (another contract keeps it from importing the harness), and the harness may use a few of refd's pieces
    in process (its version, its flag table, a deep rmtree) but otherwise only runs it. A new import of refd
    from the harness fails ``nox -s lint`` until it is added here, with its reason; an entry that no longer
    matches an import is reported too, so the list stays true."""

    type_name = "used_only_through"

    package = fields.ModuleField()
    users = fields.SetField(subfield=fields.ModuleExpressionField())
    allowed_imports = fields.SetField(subfield=fields.ImportExpressionField(), required=False)

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        package = self.package.name  # type: ignore[attr-defined]
        allowed, stale = resolve_import_expressions(graph, self.allowed_imports or [])  # type: ignore[arg-type]
        allowed_edges = {(i.importer.name, i.imported.name) for i in allowed}
        users = [m.name for m in module_expressions_to_modules(graph, self.users)]  # type: ignore[arg-type]
        importers = sorted(
            {m for m in graph.modules if any(_within(m, u) for u in users) and not _within(m, package)}
        )
        bad: list[dict[str, object]] = []
        for importer in importers:
            for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                if not _within(imported, package) or (importer, imported) in allowed_edges:
                    continue
                details = graph.get_import_details(importer=importer, imported=imported)
                lines = sorted({int(d["line_number"]) for d in details})
                bad.append({"importer": importer, "imported": imported, "lines": lines})
        return ContractCheck(
            kept=not bad and not stale,
            metadata={"bad": bad, "stale": sorted(str(e) for e in stale), "package": package},
        )

    def render_broken_contract(self, check: ContractCheck) -> None:
        package = check.metadata["package"]
        if check.metadata["bad"]:
            output.print(f"{package} may be imported only by the edges the contract lists:")
            output.new_line()
            for entry in check.metadata["bad"]:
                lines = ", ".join(f"l.{n}" for n in entry["lines"])
                output.print_error(f"-   {entry['importer']} -> {entry['imported']} ({lines})")
            output.new_line()
        for expression in check.metadata["stale"]:
            output.print_error(f"-   allowed import {expression} matches no import: remove it")
        if check.metadata["stale"]:
            output.new_line()
