"""Typed config fields: one declarative rule per field (type, range, choices), checked in one function.

A field's rule is a `Field`; a plain default value (as in `config.PROTOCOL_KEYS`) stands for the rule
`infer_field(default)` (the default's type, no range), so a key added to a table by its default alone is
still type-checked. Types are strict, as TOML is typed: an int field refuses 45.9, "49" and true; a float
field accepts an int (45 -> 45.0) but refuses "half", NaN and inf; a bool field refuses "false"; a list
field checks its length and every item. Errors are ConfigError with the message
`section.field = value is invalid: what is allowed. Fix: ...`.

(Hand-written rather than pydantic: pydantic is not installed in the suite's environment, its messages
would need rewriting into this format anyway, and the whole table is a few dozen declarative lines.)
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from benchmark.errors import ConfigError

KINDS = ("int", "float", "bool", "str", "list[int]", "list[float]", "list[str]", "any")
_TYPE_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
               "list[int]": "a list of integers", "list[float]": "a list of numbers", "list[str]": "a list of strings",
               "any": "a value"}


@dataclass(frozen=True)
class Field:
    """The rule of one config field.

    kind: one of KINDS (the item type for lists); low / high: inclusive bounds of the value (of every item
    of a list), made exclusive by open_low / open_high; choices: the allowed values (of every item);
    min_len / max_len: bounds of a list's length; pattern: a regular expression a string must match in full;
    fix: the fix shown in an error (default "set <key> = <default>").
    """

    kind: str
    default: Any = None
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: tuple = ()
    min_len: int = 0
    max_len: int | None = None
    pattern: str | None = None
    fix: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Field.kind = {self.kind!r}: one of {KINDS}")

    def allowed(self) -> str:
        """`what is allowed`, in words: 'an integer >= 1', 'a list of numbers in (0, 1]', ..."""
        words = _TYPE_WORDS[self.kind]
        if self.choices:
            words += " from " + ", ".join(repr(c) for c in self.choices) if self.kind.startswith("list") \
                else f": one of {', '.join(repr(c) for c in self.choices)}"
        words += _range_words(self)
        if self.kind.startswith("list") and (self.min_len or self.max_len is not None):
            if self.max_len == self.min_len:
                words += f", exactly {self.min_len} items"
            elif self.max_len is None:
                words += f", at least {self.min_len} item{'s' if self.min_len > 1 else ''}"
            else:
                words += f", {self.min_len} to {self.max_len} items"
        if self.pattern:
            words += f" matching {self.pattern}"
        return words


def _range_words(rule: Field) -> str:
    if rule.low is not None and rule.high is not None:
        return f" in {'(' if rule.open_low else '['}{rule.low:g}, {rule.high:g}{')' if rule.open_high else ']'}"
    if rule.low is not None:
        return f" {'>' if rule.open_low else '>='} {rule.low:g}"
    if rule.high is not None:
        return f" {'<' if rule.open_high else '<='} {rule.high:g}"
    return ""


def infer_field(default: Any) -> Field:
    """The rule a bare default stands for: its type (a list: the type of its first item), no range."""
    if isinstance(default, Field):
        return default
    if isinstance(default, bool):
        return Field("bool", default)
    if isinstance(default, int):
        return Field("int", default)
    if isinstance(default, float):
        return Field("float", default)
    if isinstance(default, str):
        return Field("str", default)
    if isinstance(default, (list, tuple)) and default:
        item = infer_field(default[0]).kind
        if item in ("int", "float", "str"):
            # a list of floats written with an int first ([1, 0.5]) still holds numbers
            kind = "float" if any(isinstance(v, float) for v in default) else item
            return Field(f"list[{kind}]", list(default))
    return Field("any", default)


def default_of(rule: Any) -> Any:
    """The default of a table entry (a Field or a bare default); lists are copied."""
    value = rule.default if isinstance(rule, Field) else rule
    return list(value) if isinstance(value, (list, tuple)) else value


def check(rule: Any, value: Any, where: str) -> Any:
    """`value` checked against `rule` (a Field or a bare default) at config path `where` (e.g.
    "protocols.guidance.window"); returns it normalised (an int given for a float field becomes a float)."""
    rule = infer_field(rule)
    key = where.rsplit(".", 1)[-1]

    def fail() -> ConfigError:
        fix = rule.fix or (f"set {key} = {_toml(rule.default)}" if rule.default is not None
                           else f"set {key} to {_TYPE_WORDS[rule.kind]}")
        return ConfigError(where, value, rule.allowed(), fix)

    if rule.kind == "any":
        return value
    if rule.kind.startswith("list["):
        if not isinstance(value, (list, tuple)):
            raise fail()
        if len(value) < rule.min_len or (rule.max_len is not None and len(value) > rule.max_len):
            raise fail()
        item_rule = Field(rule.kind[5:-1], None, rule.low, rule.high, rule.open_low, rule.open_high, rule.choices,
                          pattern=rule.pattern)
        items = []
        for item in value:
            ok, normal = _scalar(item_rule, item)
            if not ok:
                raise fail()
            items.append(normal)
        return items
    ok, normal = _scalar(rule, value)
    if not ok:
        raise fail()
    return normal


def _scalar(rule: Field, value: Any) -> tuple[bool, Any]:
    """(whether `value` satisfies the scalar rule, the normalised value)."""
    if rule.kind == "bool":
        return isinstance(value, bool), value
    if rule.kind == "str":
        if not isinstance(value, str):
            return False, value
        if rule.pattern is not None and not re.fullmatch(rule.pattern, value):
            return False, value
        return (not rule.choices or value in rule.choices), value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False, value
    if rule.kind == "int" and not isinstance(value, int):
        return False, value
    if rule.kind == "float":
        value = float(value)
        if not math.isfinite(value):
            return False, value
    if rule.choices and value not in rule.choices:
        return False, value
    if rule.low is not None and (value < rule.low or (rule.open_low and value == rule.low)):
        return False, value
    if rule.high is not None and (value > rule.high or (rule.open_high and value == rule.high)):
        return False, value
    return True, value


def _toml(value: Any) -> str:
    """A value as it is written in TOML (for the fix of an error message)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def table(value: Any, where: str) -> dict[str, Any]:
    """A TOML table as a dict (an empty table may come as None)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(where, value, "a table of keys", f"write it as a [{where}] table with key = value lines")
    return dict(value)


def located(err: ConfigError, section: str) -> ConfigError:
    """The same error with its field placed in the config, e.g. `m = 1 ...` -> `estimators.sensitivity.m = 1 ...`."""
    located = ConfigError(f"{section}.{err.field}", None, "")
    located.args = (f"{section}.{err}",)
    return located


def no_unknown(where: str, section: dict[str, Any], allowed: set[str]) -> None:
    """Refuse the first key of `section` not in `allowed`, naming the known ones."""
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}", section[unknown[0]], f"known keys are {', '.join(sorted(allowed))}",
                          "correct the spelling or remove the key")


def unknown_section(key: str, value: Any) -> None:
    """A top-level key outside the known sections: a value written above every table, or a misspelt table."""
    if not isinstance(value, dict):
        raise ConfigError(key, value, "a key inside a section (a key above the first [table] is not read)",
                          f"move {key} = ... below [run] (or the table it belongs to)")
    raise ConfigError(f"[{key}]", "(table)", "sections are [run], [model], [data], [estimators.*], [protocols.*]",
                      "rename the table to one of these, or remove it")
