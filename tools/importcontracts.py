"""An import-linter contract the built-in ones cannot say: "these modules import only the standard library
and the modules listed", for refd (stdlib only at boot) and for refd's runtime (stdlib and leaf utilities).

A forbidden contract names what may not be imported; this one names what may, so a new third-party import or
a new upward edge fails ``nox -s lint`` without anyone adding it to a list first. Direct imports are checked,
function-level and ``TYPE_CHECKING`` ones included (grimp reports them all).
"""

from __future__ import annotations

import sys

from grimp import ImportGraph
from importlinter.application import contract_utils, output
from importlinter.application.contract_utils import AlertLevel
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck
from importlinter.domain.helpers import module_expressions_to_modules

__all__ = ["AllowedImportsContract"]


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
