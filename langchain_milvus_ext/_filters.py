r"""Dict filters (PGVector operator language) compiled to Milvus boolean expressions. Pure, no I/O.

A filter is a mapping such as::

    {"genre": "fiction", "year": {"$gte": 2000}, "$or": [{"lang": "en"}, {"lang": "fr"}]}

Keys are validated identifiers (dotted keys are paths into JSON); values are rendered as typed
literals with escaping, so no user value is ever pasted into the expression. How a key maps to a
Milvus field is decided by the caller's `KeyResolver` (see `_schema.CollectionLayout.resolve_key`).

Operators: `$eq $ne $lt $lte $gt $gte $in $nin $like $exists` on a key, `$and $or $not` as
logical operators; a plain value means `$eq`; several keys in one mapping are ANDed.

Milvus semantics worth knowing (checked on Milvus Lite 3.2.2 and Milvus 2.3.5 standalone):

* A comparison on a JSON path whose key is missing from a document: on Milvus Lite 3.x it is
  *unknown* and `not` keeps it unknown, so `{"k": {"$ne": 1}}` and `{"$not": {"k": 1}}` match only
  documents that *have* `k` with another value; on Milvus 2.3 `!=` and `not` also match documents
  without `k`. Add `{"k": {"$exists": True}}` (or `False`) to get the same answer everywhere.
* `in` on a JSON path is rejected by Milvus Lite ("left side of 'in' must be a field reference"),
  so `$in` / `$nin` on a JSON path compile to `==` joined by `or` / `!=` joined by `and`;
  so does a list that mixes strings, numbers and bools on a dynamic key (`in` refuses mixed
  lists), and such a list on a scalar field is a ValueError.
* `$in: []` matches nothing and `$nin: []` matches every document. Scalar fields get
  `field in []` / `field not in []`; JSON paths get `(exists r) and (not (exists r))` /
  `(exists r) or (not (exists r))` (bare `true` / `false` are rejected by Milvus 2.3).
* `$exists` only applies to JSON paths (Milvus rejects `exists` on a scalar field), so it raises
  `ValueError` on a scalar field. `exists` binds loosely on Milvus 2.3 (`exists a and b` means
  `exists (a and b)`), which is why every operand of `and` / `or` is parenthesised.
* `$like` patterns are passed to Milvus as typed string literals (`%` any run, `_` one
  character); Milvus 2.3 only accepts prefix patterns such as `"abc%"`.
* String literals escape backslash, double quote, newline, carriage return and tab as
  `\\ \" \n \r \t`, the only escapes every Milvus parser accepts (`\u`, `\x`, `\0` are
  rejected by Milvus Lite). Raw newline / CR end a literal, so they must be escaped; every other
  character, NUL and other control characters and typographic quotes included, is accepted
  verbatim by both parsers and passed through unchanged.
* A JSON number compares equal to a JSON bool on Milvus Lite (`metadata["n"] == true` matches
  `n: 1`); bools are still always rendered `true` / `false`, never as integers.
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FieldRef",
    "KeyResolver",
    "combine_and",
    "compile_filter",
    "ids_expr",
    "json_path_ref",
    "render_literal",
    "validate_key",
]


@dataclass(frozen=True)
class FieldRef:
    """How a filter key is referenced in a Milvus expression.

    Attributes:
        expr: The reference text, e.g. `category` or `metadata["a"]["b"]`.
        is_json_path: True when the reference is a path into a JSON field (or the dynamic field).
        takes_in: Whether `ref in [...]` parses: scalar fields and top-level dynamic-field keys
            (`year in [1, 2]`); Milvus Lite refuses it on a bracketed JSON path.
    """

    expr: str
    is_json_path: bool
    takes_in: bool = False


KeyResolver = Callable[[str], FieldRef]
"""Maps a filter key to a `FieldRef`; raises `ValueError` for an unknown or invalid key."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_NEEDS_ESCAPE = re.compile(r'[\\"\n\r\t]')
_COMPARISONS = {"$eq": "==", "$ne": "!=", "$lt": "<", "$lte": "<=", "$gt": ">", "$gte": ">="}
_KEY_OPERATORS = frozenset({*_COMPARISONS, "$in", "$nin", "$like", "$exists"})
_LOGICAL_OPERATORS = frozenset({"$and", "$or", "$not"})
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def validate_key(key: str) -> list[str]:
    """Split a dotted filter key into its path parts, checking each part.

    Args:
        key: A key such as `"year"` or `"author.name"`.

    Returns:
        The path parts, e.g. `["author", "name"]`.

    Raises:
        ValueError: If the key is not a string or a part is not an identifier
            (`^[A-Za-z_][A-Za-z0-9_]*$`).
    """
    if not isinstance(key, str):
        raise ValueError(f"filter key {key!r} must be a string, got {type(key).__name__}")
    parts = key.split(".")
    for part in parts:
        if not _IDENTIFIER.fullmatch(part):
            raise ValueError(
                f"invalid filter key {key!r}: each dot-separated part must match "
                "[A-Za-z_][A-Za-z0-9_]*"
            )
    return parts


def render_literal(value: Any) -> str:
    """Render a Python scalar as a typed Milvus literal.

    Args:
        value: A `str`, `bool`, `int` or finite `float`.

    Returns:
        The literal text: strings double-quoted and escaped, booleans as `true` / `false`,
        numbers in `repr` form.

    Raises:
        ValueError: For any other type, a non-finite float, an integer outside int64, or a
            string that cannot be encoded as UTF-8 (lone surrogates).

    Example:
        >>> render_literal('say "hi"\\n')
        '"say \\\\"hi\\\\"\\\\n"'
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"string {_short(value)} is not valid UTF-8: {exc.reason}") from None
        return '"' + _NEEDS_ESCAPE.sub(lambda m: _ESCAPES[m.group()], value) + '"'
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"integer {value} is outside the int64 range Milvus supports")
        return str(int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"float {value!r} cannot be used in a filter (not finite)")
        return repr(float(value))
    raise ValueError(
        f"cannot render a value of type {type(value).__name__} as a Milvus literal "
        "(expected str, int, float or bool)"
    )


def json_path_ref(field: str, path: Sequence[str]) -> str:
    """Reference a path inside a JSON field.

    Args:
        field: The JSON field name (e.g. `metadata`, or `$meta` for the dynamic field).
        path: The keys to descend through.

    Returns:
        The reference, e.g. `json_path_ref("metadata", ["a", "b"])` gives `metadata["a"]["b"]`.
        Each path key is rendered as an escaped string literal.

    Raises:
        ValueError: If a path key is not a string.
    """
    parts = [field]
    for key in path:
        if not isinstance(key, str):
            raise ValueError(f"JSON path key {key!r} must be a string")
        parts.append(f"[{render_literal(key)}]")
    return "".join(parts)


def combine_and(*exprs: str | None) -> str | None:
    """AND together the non-empty expressions, each parenthesised.

    Args:
        *exprs: Expressions; `None` and blank strings are skipped.

    Returns:
        `None` if nothing is left, the expression itself if only one is left, otherwise
        `(a) and (b) and ...`.

    Raises:
        ValueError: If several are left and one is not a closed group (`is_self_contained`):
            it could escape its parentheses, e.g. ``x) or (y`` would undo the others.
    """
    kept = [e.strip() for e in exprs if e is not None and e.strip()]
    if not kept:
        return None
    if len(kept) == 1:
        return kept[0]
    for expr in kept:
        if not is_self_contained(expr):
            raise ValueError(
                f"expr {_short(expr)} is not one closed expression (unbalanced brackets or "
                "quotes); it cannot be combined with the other conditions"
            )
    return " and ".join(f"({e})" for e in kept)


_CLOSING = {")": "(", "]": "[", "}": "{"}


def is_self_contained(expr: str) -> bool:
    """Whether `expr`, parenthesised, stays one group when joined to other expressions.

    True when its string literals are closed and its brackets balanced outside them. A raw
    expression failing this is malformed on its own, but `(a') or ('b)`-style text could
    join with a neighbour into a valid expression that means something else, so it must be
    sent alone (the server then rejects it), never merged.
    """
    stack: list[str] = []
    quote: str | None = None
    escaped = False
    for ch in expr:
        if quote is not None:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            stack.append(ch)
        elif ch in _CLOSING and (not stack or stack.pop() != _CLOSING[ch]):
            return False
    return quote is None and not stack


def ids_expr(pk_field: str, ids: Sequence[Any]) -> str:
    """Build `pk in [...]` for a list of primary keys (or of values of another field).

    Args:
        pk_field: The primary-key field name, or a field (or dynamic key) reference.
        ids: String or integer keys (not bool); an empty list gives `pk in []` (matches nothing).

    Returns:
        E.g. `pk in ["a", "b"]` or `pk in [1, 2]`; strings mixed with integers give
        `(k in ["a"]) or (k in [2])` (Milvus refuses a list that mixes them).

    Raises:
        ValueError: If `ids` is a bare string, or an id is neither `str` nor `int`.
    """
    if isinstance(ids, str | bytes):
        raise ValueError("ids must be a sequence of ids, not a single string")
    for pk in ids:
        if isinstance(pk, bool) or not isinstance(pk, str | int):
            raise ValueError(f"id {pk!r} must be a str or int, got {type(pk).__name__}")
    strings = [pk for pk in ids if isinstance(pk, str)]
    if not strings or len(strings) == len(ids):
        return f"{pk_field} in [{', '.join(render_literal(pk) for pk in ids)}]"
    # Concurrent deletes on one dynamic key may bring strings and numbers; `in` refuses a mixed
    # list, so each kind gets its own.
    numbers = [pk for pk in ids if not isinstance(pk, str)]
    return f"({ids_expr(pk_field, strings)}) or ({ids_expr(pk_field, numbers)})"


def compile_filter(filter: Mapping[str, Any] | str | None, resolve_key: KeyResolver) -> str | None:
    """Compile a filter to a Milvus boolean expression.

    Args:
        filter: `None`; a raw Milvus expression string (returned stripped, for power users);
            or a dict in PGVector's operator language.
        resolve_key: Maps a (validated) key to the field reference to use; may raise
            `ValueError` for keys that are not fields or metadata keys.

    Returns:
        The expression, or `None` when there is nothing to filter (None, blank string,
        empty dict).

    Raises:
        ValueError: For an unknown operator, an invalid key, or a value of the wrong shape;
            the message names the operator or key.

    Example:
        >>> resolve = lambda k: FieldRef(json_path_ref("metadata", k.split(".")), True)
        >>> compile_filter({"year": {"$gte": 2000}, "lang": {"$in": ["en", "fr"]}}, resolve)
        '(metadata["year"] >= 2000) and ((metadata["lang"] == "en" or metadata["lang"] == "fr"))'
    """
    if filter is None:
        return None
    if isinstance(filter, str):
        return filter.strip() or None
    if not isinstance(filter, Mapping):
        raise ValueError(f"filter must be a dict, a string or None, got {type(filter).__name__}")
    if not filter:
        return None
    return _compile_mapping(filter, resolve_key)


def _compile_mapping(clause: Mapping[str, Any], resolve_key: KeyResolver) -> str:
    if not clause:
        raise ValueError("empty filter clause inside a logical operator")
    parts = [_compile_entry(key, value, resolve_key) for key, value in clause.items()]
    return _join(parts, "and")


def _compile_entry(key: Any, value: Any, resolve_key: KeyResolver) -> str:
    if isinstance(key, str) and key.startswith("$"):
        if key not in _LOGICAL_OPERATORS:
            raise ValueError(f"unknown filter operator {key!r} (expected $and, $or or $not)")
        return _compile_logical(key, value, resolve_key)
    validate_key(key)
    ref = resolve_key(key)
    if isinstance(value, Mapping):
        if not value:
            raise ValueError(f"filter key {key!r}: empty operator dict")
        if not all(isinstance(op, str) and op.startswith("$") for op in value):
            raise ValueError(
                f"filter key {key!r}: a dict value must hold operators such as $eq or $in, "
                f"got {sorted(map(str, value))}"
            )
        return _join([_compile_op(key, ref, op, arg) for op, arg in value.items()], "and")
    return _compile_op(key, ref, "$eq", value)


def _compile_logical(op: str, value: Any, resolve_key: KeyResolver) -> str:
    if op == "$not":
        if isinstance(value, Mapping):
            return f"not ({_compile_mapping(value, resolve_key)})"
        if isinstance(value, list | tuple) and value and all(isinstance(v, Mapping) for v in value):
            return f"not ({_join([_compile_mapping(v, resolve_key) for v in value], 'and')})"
        raise ValueError(
            f"operator $not takes a filter dict (or a list of them), got {type(value).__name__}"
        )
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"operator {op} takes a non-empty list of filter dicts")
    parts = []
    for item in value:
        if not isinstance(item, Mapping):
            raise ValueError(
                f"operator {op} takes a list of filter dicts, got an item of type "
                f"{type(item).__name__}"
            )
        parts.append(_compile_mapping(item, resolve_key))
    return _join(parts, op[1:])


def _compile_op(key: str, ref: FieldRef, op: str, arg: Any) -> str:
    if op in _COMPARISONS:
        return f"{ref.expr} {_COMPARISONS[op]} {_scalar(key, op, arg)}"
    if op in ("$in", "$nin"):
        return _compile_membership(key, ref, op, arg)
    if op == "$like":
        if not isinstance(arg, str):
            raise ValueError(
                f"filter key {key!r}: $like takes a string pattern, got {type(arg).__name__}"
            )
        return f"{ref.expr} like {render_literal(arg)}"
    if op == "$exists":
        if not isinstance(arg, bool):
            raise ValueError(
                f"filter key {key!r}: $exists takes True or False, got {type(arg).__name__}"
            )
        if not ref.is_json_path:
            raise ValueError(
                f"filter key {key!r}: $exists only applies to metadata (JSON) keys, "
                f"not to the scalar field {ref.expr}"
            )
        return f"exists {ref.expr}" if arg else f"not (exists {ref.expr})"
    raise ValueError(
        f"filter key {key!r}: unknown filter operator {op!r} "
        f"(expected one of {', '.join(sorted(_KEY_OPERATORS))})"
    )


def _compile_membership(key: str, ref: FieldRef, op: str, arg: Any) -> str:
    if not isinstance(arg, list | tuple):
        raise ValueError(
            f"filter key {key!r}: {op} takes a list of values, got {type(arg).__name__}"
        )
    literals = [_scalar(key, op, item) for item in arg]
    negate = op == "$nin"
    kinds = {_value_kind(item) for item in arg}
    mixed = len(kinds) > 1
    if mixed and not ref.is_json_path:
        raise ValueError(
            f"filter key {key!r}: {op} mixes {' and '.join(sorted(kinds))} values, but the "
            f"field {ref.expr} holds one type"
        )
    if not ref.is_json_path or (ref.takes_in and literals and not mixed):
        return f"{ref.expr} {'not in' if negate else 'in'} [{', '.join(literals)}]"
    if not literals:
        # Always true / always false without bare `true` / `false` (rejected by Milvus 2.3).
        joiner = "or" if negate else "and"
        return f"((exists {ref.expr}) {joiner} (not (exists {ref.expr})))"
    cmp, joiner = ("!=", "and") if negate else ("==", "or")
    return _join([f"{ref.expr} {cmp} {lit}" for lit in literals], joiner, wrap_items=False)


def _value_kind(value: Any) -> str:
    """The kind Milvus gives a literal in a list: bool, number or string.

    A list that mixes kinds (`["", 0]`) is refused by `in [...]` ("list elements must be of
    compatible types"), so such lists are compiled to `==` joined by `or`.
    """
    if isinstance(value, bool):
        return "bool"
    return "string" if isinstance(value, str) else "number"


def _scalar(key: str, op: str, value: Any) -> str:
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        raise ValueError(
            f"filter key {key!r}: {op} needs a scalar (str, int, float or bool), "
            f"got {type(value).__name__} {_short(value)}"
        )
    try:
        return render_literal(value)
    except ValueError as exc:
        raise ValueError(f"filter key {key!r}: {op}: {exc}") from None


def _short(value: Any) -> str:
    return reprlib.repr(value)


def _join(parts: list[str], joiner: str, *, wrap_items: bool = True) -> str:
    if len(parts) == 1:
        return parts[0]
    body = f" {joiner} ".join(f"({p})" if wrap_items else p for p in parts)
    return f"({body})" if not wrap_items else body
