"""Command-line flags made from typed settings dataclasses, and parsed back into them.

Each setting is one dataclass field with its one default; its flag, help and
choices ride in the field's metadata (`flag(...)`). The parser is built from
the fields and the parsed namespace becomes the same dataclasses again, so
the rest of the mesh only ever sees typed settings (mypy checks every read)
and no default is written twice. argparse stays: no dataclass-CLI library
keeps today's flag names (`--hub-heartbeat-interval`, `--nit off`) and their
`PEROMESH_*` environment twins without its own naming scheme, and the
mapping is a few dozen lines.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from collections.abc import Sequence
from typing import Any, TypeVar

T = TypeVar("T")
_META = "peromesh.flag"


@dataclasses.dataclass(frozen=True)
class FlagSpec:
    name: str  # without the leading dashes
    help: str
    choices: tuple[str, ...] = ()
    metavar: str | None = None


def flag(default: Any, name: str, help: str = "", *, choices: Sequence[str] = (),
         metavar: str | None = None) -> Any:
    """A settings field that is also the flag `--<name>` (and the variable PEROMESH_<NAME>).

    A field without it must hold another settings dataclass (`field(default_factory=Cls)`),
    whose flags join the same group."""
    spec = FlagSpec(name, help, tuple(choices), metavar)
    return dataclasses.field(default=default, metadata={_META: spec})


def _leaf_type(annotation: Any) -> type:
    """The scalar type X of a field annotated `X` or `X | None` (None is only ever the default;
    a value given on the command line is always an X)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported settings type {annotation!r}")
        return typing.cast(type, args[0])
    return typing.cast(type, annotation)


def _fields(cls: type[Any]) -> list[tuple[dataclasses.Field[Any], Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls)]


def add_flags(group: argparse._ActionsContainer, cls: type[Any]) -> None:
    """Add the flags of settings class `cls` (and of its nested settings) to `group`."""
    for field, annotation in _fields(cls):
        spec = field.metadata.get(_META)
        if spec is None:
            if not dataclasses.is_dataclass(annotation):
                raise TypeError(f"{cls.__name__}.{field.name}: not a flag and not nested settings")
            add_flags(group, typing.cast(type[Any], annotation))
            continue
        kind = _leaf_type(annotation)
        if kind is bool:
            group.add_argument(f"--{spec.name}", action="store_true", default=field.default, help=spec.help)
            continue
        group.add_argument(f"--{spec.name}", type=kind, default=field.default, help=spec.help,
                           choices=list(spec.choices) or None, metavar=spec.metavar)


def read(cls: type[T], namespace: argparse.Namespace) -> T:
    """The settings `cls` from a namespace parsed with `add_flags(…, cls)`."""
    values: dict[str, Any] = {}
    for field, annotation in _fields(cls):
        spec = field.metadata.get(_META)
        if spec is None:
            values[field.name] = read(typing.cast(type[Any], annotation), namespace)
        else:
            values[field.name] = getattr(namespace, spec.name.replace("-", "_"))
    return cls(**values)


def apply_environment(parser: argparse.ArgumentParser, environ: typing.Mapping[str, str] = os.environ) -> None:
    """PEROMESH_<FLAG> overrides a flag's default (flags given on the command line still win)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                apply_environment(child, environ)
            continue
        for opt in action.option_strings:
            if not opt.startswith("--"):
                continue
            value = environ.get("PEROMESH_" + opt[2:].upper().replace("-", "_"))
            if value is None:
                continue
            if isinstance(action, argparse._StoreTrueAction):
                action.default = value.strip().lower() in ("1", "true", "yes", "on")
            else:
                action.default = action.type(value) if callable(action.type) else value
