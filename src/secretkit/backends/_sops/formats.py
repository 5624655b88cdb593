"""Reading the five file formats ``sops`` writes into one tree plus its ``sops`` metadata.

The tree keeps the document's key order: the MAC is a hash over the values in that order.
Nothing in a file is trusted before its MAC is checked, and parsing comes first: every format
is read in time linear in the file, and a tree deeper than ``MAX_DEPTH`` or with more than
``MAX_NODES`` nodes (YAML aliases counted as what they expand to) is refused before anyone walks it.
"""

from __future__ import annotations

import configparser
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..._errors import ConfigurationError, MissingDependency

__all__ = ["MAX_ALIASES", "MAX_DEPTH", "MAX_NODES", "SopsDocument", "looks_like_sops", "parse_document"]

#: The deepest nesting of maps and lists accepted (sops files are a few levels deep).
MAX_DEPTH = 64
#: The most nodes (maps, lists, values) a document may hold, aliases expanded.
MAX_NODES = 100_000
#: The most YAML aliases a document may use.
MAX_ALIASES = 1_000

_DOTENV_PREFIX = "sops_"
_SPACES = re.compile(r"[^\S\n]{2,}")
_INI_SPACE_BUDGET = 32_000_000  # ~0.2 s of configparser at ~5 ns a step
_FLAT_TOKEN = re.compile(r"(__map_|__list_)")
# Fields that flat formats (dotenv, INI) store as text but sops reads as numbers or flags.
_INT_FIELDS = {"shamir_threshold"}
_BOOL_FIELDS = {"mac_only_encrypted"}


@dataclass
class SopsDocument:
    """A SOPS file as read from disk: still encrypted, not yet verified."""

    path: Path
    format: str  # "yaml", "json", "dotenv", "ini" or "binary"
    tree: dict[str, Any]
    metadata: dict[str, Any]


def looks_like_sops(data: bytes) -> bool:
    """A cheap test on the raw bytes: does this file carry SOPS metadata?"""
    text = data[:1_000_000]
    return (
        b"sops_mac=" in text
        or b"\n[sops]" in text
        or text.startswith(b"[sops]")
        or (b'"sops"' in text and b'"mac"' in text)
        or (re.search(rb"(?m)^sops:\s*$", text) is not None and b"mac:" in text)
    )


def parse_document(path: Path, data: bytes) -> SopsDocument:
    """Parse ``data`` (the bytes of ``path``) in whichever format sops wrote it.

    Raises ``ConfigurationError`` naming the file when it is not a SOPS file.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _not_sops(path, "it is not UTF-8 text") from None
    stripped = text.lstrip()
    if stripped.startswith("{"):
        fmt, tree = "json", _load_json(path, text)
    elif re.search(r"(?m)^sops_[A-Za-z0-9_]+=", text):
        fmt, tree = "dotenv", _load_dotenv(path, text)
    elif re.search(r"(?m)^\[sops\]\s*$", text):
        fmt, tree = "ini", _load_ini(path, text)
    else:
        fmt, tree = "yaml", _load_yaml(path, text)
    if fmt != "yaml":  # YAML was counted from its parser's events, aliases expanded
        _check_tree(path, tree)
    raw_meta = _pop_metadata(path, fmt, tree)
    if fmt == "json" and set(tree) == {"data"} and isinstance(tree["data"], str) and path.suffix != ".json":
        fmt = "binary"  # `sops encrypt --input-type binary` writes {"data": ..., "sops": ...}
    metadata = _typed_metadata(raw_meta)
    if "mac" not in metadata or "lastmodified" not in metadata:
        raise _not_sops(path, "its sops metadata has no mac or lastmodified")
    return SopsDocument(path, fmt, tree, metadata)


def _not_sops(path: Path, why: str) -> ConfigurationError:
    return ConfigurationError(f"{str(path)!r} is not a file sops wrote: {why}")


def _load_json(path: Path, text: str) -> dict[str, Any]:
    try:
        tree = json.loads(text)
    except ValueError as exc:
        # The position says where; the document may hold plaintext, so no excerpt of it.
        raise _not_sops(path, f"it is not valid JSON (line {getattr(exc, 'lineno', '?')})") from None
    except RecursionError:
        raise _not_sops(path, f"it nests deeper than {MAX_DEPTH} levels") from None
    if not isinstance(tree, dict):
        raise _not_sops(path, "its JSON document is not an object")
    return tree


def _load_dotenv(path: Path, text: str) -> dict[str, Any]:
    # sops's own reading: KEY=VALUE per line, '#' lines are comments, "\n" means a newline.
    tree: dict[str, Any] = {}
    for number, line in enumerate(text.split("\n"), 1):
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            # The line number only: a line without '=' may be a value pasted on its own.
            raise _not_sops(path, f"line {number} has no '='")
        tree[key] = value.replace("\\n", "\n")
    return tree


def _load_ini(path: Path, text: str) -> dict[str, Any]:
    # configparser's option pattern (`.*?\s*[=:]`) rescans a run of spaces from each of its
    # characters: a 40 KB run costs seconds. A file sops wrote has short runs; refuse long ones.
    if sum(len(run) ** 2 for run in _SPACES.findall(text)) > _INI_SPACE_BUDGET:
        raise _not_sops(path, "it holds runs of spaces too long for an INI file")
    # A default_section no file uses: sops treats [DEFAULT] as an ordinary section.
    parser = configparser.ConfigParser(interpolation=None, strict=False, default_section="\x00")
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise _not_sops(path, f"it is not valid INI ({type(exc).__name__})") from None
    return {section: dict(parser[section].items()) for section in parser.sections()}


def _load_yaml(path: Path, text: str) -> dict[str, Any]:
    try:
        import yaml
    except ImportError:
        raise MissingDependency("sops", "PyYAML", "sops") from None

    try:
        _check_yaml_events(path, yaml.parse(text, Loader=_loader()))
        documents = list(yaml.load_all(text, Loader=_loader()))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise _not_sops(path, f"it is not valid YAML{where}") from None
    except ConfigurationError:  # a ValueError too: the limits above
        raise
    except ValueError:  # an integer past Python's 4300-digit conversion limit
        raise _not_sops(path, "it holds a number too long to read") from None
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise _not_sops(path, "it is not one YAML mapping (multi-document files are not supported)")
    return {str(k): v for k, v in documents[0].items()}


def _check_yaml_events(path: Path, events: Any) -> None:
    """Refuse a YAML stream whose tree, aliases expanded, is too deep or too large.

    PyYAML builds an alias as a shared object, so a 1.5 KB file of nested aliases loads at
    once into a tree of 10^9 nodes that every later walk (MAC, JSON, redaction) expands.
    Counted here from the parser's events, before anything is built: each anchor's size and
    height, each alias as what it stands for. An alias to an anchor still open (a cycle) is refused.
    """
    import yaml

    collection_start = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
    collection_end = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
    nodes = aliases = 0
    # Per anchor: (nodes, height) of what it names. Per open collection: anchor, nodes when
    # it opened, and the deepest level reached inside it.
    anchors: dict[str, tuple[int, int]] = {}
    stack: list[list[Any]] = []
    for event in events:
        if isinstance(event, collection_start):
            nodes += 1
            stack.append([event.anchor, nodes, len(stack) + 1])
            if len(stack) > MAX_DEPTH:
                raise _not_sops(path, f"it nests deeper than {MAX_DEPTH} levels")
        elif isinstance(event, collection_end):
            anchor, started, deepest = stack.pop()
            if anchor is not None:
                anchors[anchor] = (nodes - started + 1, deepest - len(stack))
            if stack:
                stack[-1][2] = max(stack[-1][2], deepest)
        elif isinstance(event, yaml.ScalarEvent):
            nodes += 1
            if event.anchor is not None:
                anchors[event.anchor] = (1, 0)
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise _not_sops(path, f"it uses more than {MAX_ALIASES} aliases")
            named = anchors.get(str(event.anchor))
            if named is None:
                raise _not_sops(path, "an alias refers to an anchor not complete before it (a cycle)")
            nodes += named[0]
            if stack:
                stack[-1][2] = max(stack[-1][2], len(stack) + named[1])
                if stack[-1][2] > MAX_DEPTH:
                    raise _not_sops(path, f"it nests deeper than {MAX_DEPTH} levels (aliases expanded)")
        if nodes > MAX_NODES:
            raise _not_sops(path, f"it holds more than {MAX_NODES} values (aliases expanded)")


def _check_tree(path: Path, tree: Any) -> None:
    """Refuse a parsed tree deeper than ``MAX_DEPTH`` or larger than ``MAX_NODES``; iterative."""
    nodes = 0
    pending: list[tuple[Any, int]] = [(tree, 1)]
    while pending:
        node, depth = pending.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise _not_sops(path, f"it holds more than {MAX_NODES} values")
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > MAX_DEPTH:
            raise _not_sops(path, f"it nests deeper than {MAX_DEPTH} levels")
        pending.extend((child, depth + 1) for child in children)


def _pop_metadata(path: Path, fmt: str, tree: dict[str, Any]) -> dict[str, Any]:
    if fmt == "dotenv":
        flat = {k[len(_DOTENV_PREFIX) :]: tree.pop(k) for k in list(tree) if k.startswith(_DOTENV_PREFIX)}
        return _unflattened(path, flat)
    meta = tree.pop("sops", None)
    if not isinstance(meta, dict):
        raise _not_sops(path, "it has no sops metadata")
    if fmt == "ini":
        return _unflattened(path, {k: v.replace("\\n", "\n") for k, v in meta.items()})
    return meta


def _unflattened(path: Path, flat: dict[str, str]) -> dict[str, Any]:
    try:
        return _unflatten(flat)
    except (TypeError, AttributeError, IndexError, ValueError):
        # `age__list_0` beside `age__map_x`, or an index past the entries: a key says
        # which; neither is something sops writes.
        raise _not_sops(path, "its sops metadata entries do not form one tree") from None


def _unflatten(flat: dict[str, str]) -> dict[str, Any]:
    # age__list_0__map_enc -> {"age": [{"enc": ...}]}: the flat formats' way to nest metadata.
    root: dict[str, Any] = {}
    for key, value in flat.items():
        parts = _FLAT_TOKEN.split(key)
        tokens: list[str | int] = [parts[0]]
        for kind, name in zip(parts[1::2], parts[2::2], strict=True):
            index = int(name) if kind == "__list_" else -1
            # A list has no more items than there are entries: `__list_999999999` would
            # otherwise fill memory with empty slots.
            if kind == "__list_" and not 0 <= index < len(flat):
                raise IndexError(index)
            tokens.append(index if kind == "__list_" else name)
        node: Any = root
        for token, following in itertools.pairwise(tokens):
            empty: Any = [] if isinstance(following, int) else {}
            if isinstance(token, int):
                while len(node) <= token:
                    node.append(None)
                if node[token] is None:
                    node[token] = empty
                node = node[token]
            else:
                node = node.setdefault(token, empty)
        last = tokens[-1]
        if isinstance(last, int):
            while len(node) <= last:
                node.append(None)
            node[last] = value
        else:
            node[last] = value
    return root


def _typed_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    typed = dict(meta)
    for name in _INT_FIELDS & typed.keys():
        try:
            typed[name] = int(typed[name])
        except (TypeError, ValueError):
            typed[name] = 0
    for name in _BOOL_FIELDS & typed.keys():
        value = typed[name]
        typed[name] = value if isinstance(value, bool) else str(value).lower() in ("true", "1", "t")
    return typed


def _yaml12_loader() -> Any:
    import yaml

    # libyaml's parser when PyYAML was built with it: the pure-Python one is ~20x slower.
    base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc]
        """PyYAML's safe loader read as YAML 1.2, as sops (go-yaml v3) reads it.

        ``yes``/``on`` stay strings and timestamps stay text: an unencrypted value enters
        the MAC as sops saw it.
        """

    resolvers = {
        first: [(tag, rx) for tag, rx in entries if tag not in (_BOOL_TAG, _TIMESTAMP_TAG, _INT_TAG)]
        for first, entries in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.yaml_implicit_resolvers = resolvers
    Loader.add_implicit_resolver(
        _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )
    # YAML 1.1's base-60 integers (`1:20`) are plain text in YAML 1.2, and PyYAML reads them
    # in time quadratic in their length: text when implicit, refused when tagged `!!int`.
    Loader.add_implicit_resolver(_INT_TAG, _INT_1_2, list("-+0123456789"))

    def construct_int(loader: Any, node: Any) -> Any:
        if ":" in str(node.value):
            raise yaml.constructor.ConstructorError(
                None, None, "a base-60 integer (YAML 1.1 only)", node.start_mark
            )
        return yaml.SafeLoader.construct_yaml_int(loader, node)

    Loader.add_constructor(_INT_TAG, construct_int)
    return Loader


_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_INT_1_2 = re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$")
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


_loader_cache: list[Any] = []


def _loader() -> Any:
    # Built on first use: `import secretkit` must not import PyYAML.
    if not _loader_cache:
        _loader_cache.append(_yaml12_loader())
    return _loader_cache[0]
