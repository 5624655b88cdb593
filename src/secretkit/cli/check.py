"""``secretkit check``: a preflight that resolves each secret and reports its status, never its value."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .._api import default_store
from .._errors import ConfigurationError
from ._exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError
from ._output import print_error, say, say_block, say_json, terminal_safe
from ._resolve import references_in_environment, resolve_all
from ._settings import check_settings
from ._sops import describe_files, sops_paths
from ._status import StatusRow, status_row


def command(args: argparse.Namespace) -> int:
    """Resolve each secret asked for and print a status table; 1 if any fails."""
    store = default_store()
    names: list[str] = list(args.names)
    rows: list[StatusRow] = []
    if args.settings:
        rows.extend(check_settings(args.settings))
    elif not names:
        names = sorted(references_in_environment())
        if not names:
            raise CliError(
                "nothing to check: give NAMES or --settings pkg.module:Class "
                "(no environment variable or ./.env entry holds a reference)",
                EXIT_USAGE,
            )
    # A name that is a SOPS file is checked whole: can this environment open it, is it intact?
    names = [f"sops://{name}" if sops_paths([name]) and "://" not in name else name for name in names]
    resolved, failures = resolve_all(store, names)
    rows.extend(status_row(name, resolved.get(name), failures.get(name)) for name in dict.fromkeys(names))
    failed = [row for row in rows if row.failed]
    sops_files = describe_files(sops_paths(_pointed_at(names)))
    if args.json:
        report = {"ok": not failed, "secrets": [row.as_json() for row in rows], "sops_files": sops_files}
        say_json(report)
    else:
        _print_check_table(rows)
        if sops_files:
            say()
            say_block("sops files:", [line for report in sops_files for line in report["description"]])
        for row in failed:
            print_error(f"{row.field or row.name}: {row.error or row.status}")
    return EXIT_FAILED if failed else EXIT_OK


def _pointed_at(names: Sequence[str]) -> list[str]:
    """The names, and the reference each name that the environment or ./.env holds points to."""
    try:
        held = references_in_environment()
    except ConfigurationError:  # a malformed ./.env fails the names that need it, in their rows
        held = references_in_environment(dotenv=False)
    return [*names, *(held[name] for name in names if name in held)]


def _print_check_table(rows: Sequence[StatusRow]) -> None:
    with_fields = any(row.field is not None for row in rows)
    header = ["FIELD"] if with_fields else []
    header += ["NAME", "STATUS", "SOURCE", "VERSION"]
    table = [header]
    for row in rows:
        cells = [row.field or "-"] if with_fields else []
        cells += [row.name, row.status, row.source or "-", row.version or "-"]
        # Escaped before the widths are measured: a version is whatever a server said.
        table.append([terminal_safe(cell) for cell in cells])
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for cells in table:
        say("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
    ok = sum(1 for row in rows if not row.failed)
    say(f"{len(rows)} checked: {ok} ok, {len(rows) - ok} failed")
