"""The template language of ``secretkit inject``: ``{{ secret "REF" }}`` and nothing else.

A template is configuration someone else may write (a ConfigMap, a repository file), so it
must not be able to run code or reach values it does not name: there are no expressions,
filters, includes or conditionals to sandbox, because there is no evaluator. A placeholder
is exactly ``{{``, the word ``secret``, one double-quoted reference or name, ``}}``
(spaces allowed between). Every other byte is copied as it is, ``{{`` of the file's own
syntax included (a Jinja, Go or Mustache file stays intact), except that ``{{ secret``
always opens a placeholder: a malformed one is an error naming its line, never text left
in the output for a reader to choke on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ._exits import EXIT_CONFIG, CliError
from ._output import shown_name

__all__ = ["Template", "parse_template"]

# `secret` as a whole word after `{{`: `{{ secrets }}` or `{{secretary}}` is the file's own text.
_OPENER = re.compile(r"\{\{[ \t]*secret(?![A-Za-z0-9_])")
# The reference holds no quote, backslash or line break: nothing to escape, nothing to unescape.
_PLACEHOLDER = re.compile(r'\{\{[ \t]*secret[ \t]+"([^"\\\r\n]+)"[ \t]*\}\}')


@dataclass(frozen=True)
class Template:
    """A parsed template: the literal text around each placeholder, and the keys in order."""

    literals: tuple[str, ...]  # one more than keys
    keys: tuple[str, ...]

    @property
    def distinct_keys(self) -> list[str]:
        return list(dict.fromkeys(self.keys))

    def render(self, values: Mapping[str, str]) -> str:
        parts: list[str] = [self.literals[0]]
        for key, literal in zip(self.keys, self.literals[1:], strict=True):
            parts.append(values[key])
            parts.append(literal)
        return "".join(parts)


def parse_template(text: str, *, source: str) -> Template:
    """Split ``text`` at its placeholders; a malformed ``{{ secret`` is a ``CliError`` naming its line."""
    literals: list[str] = []
    keys: list[str] = []
    at = 0
    for opener in _OPENER.finditer(text):
        start = opener.start()
        if start < at:
            continue  # inside a placeholder already taken
        found = _PLACEHOLDER.match(text, start)
        if found is None:
            line = text.count("\n", 0, start) + 1
            raise CliError(
                f"{shown_name(source)}, line {line}: a placeholder must be exactly "
                '{{ secret "REF" }} (one double-quoted reference, no filters or expressions)',
                EXIT_CONFIG,
            )
        key = found.group(1).strip()
        if not key:
            line = text.count("\n", 0, start) + 1
            raise CliError(f"{shown_name(source)}, line {line}: an empty reference", EXIT_CONFIG)
        literals.append(text[at:start])
        keys.append(key)
        at = found.end()
    literals.append(text[at:])
    return Template(tuple(literals), tuple(keys))
