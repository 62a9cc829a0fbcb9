"""Command-line options made from the stage Configs, and the error handler every command shares.

A stage's Config dataclass is the one home of each parameter: its default (the paper's),
its type and its help (the paper's symbol and section), given with :func:`setting`. The
``ixmcts`` commands and the MLflow entry points build their click options from it with
:func:`config_options`; a nested dataclass (LoRA) becomes flat ``lora_*`` options. An option
left empty takes the profile's value (``ixmcts.profiles``).
"""

from __future__ import annotations

import dataclasses
import functools
import sys

from .errors import IxmctsError


def setting(default, help: str, **kwargs):
    """A Config field with its help text (the paper's symbol and section where it has one)."""
    return dataclasses.field(default=default, metadata={"help": help}, **kwargs)


def _default(f: dataclasses.Field):
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def flat_fields(cls) -> dict[str, tuple[type, object, str]]:
    """``{name: (type, default, help)}`` for every field, a nested dataclass's as ``<field>_<name>``."""
    out = {}
    for f in dataclasses.fields(cls):
        default = _default(f)
        if dataclasses.is_dataclass(default):
            for name, (kind, inner, help) in flat_fields(type(default)).items():
                out[f"{f.name}_{name}"] = (kind, inner, help)
        else:
            out[f.name] = (type(default), default, f.metadata.get("help", ""))
    return out


def build(cls, values: dict):
    """``cls`` from flat values (``lora_r`` → ``lora=LoraSettings(r=…)``)."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        default = _default(f)
        if dataclasses.is_dataclass(default):
            prefix = f"{f.name}_"
            kwargs[f.name] = build(type(default), {k[len(prefix):]: v for k, v in values.items() if k.startswith(prefix)})
        elif f.name in values:
            kwargs[f.name] = values[f.name]
    return cls(**kwargs)


def flatten(config) -> dict:
    """A Config as flat parameters (the inverse of :func:`build`)."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out.update({f"{f.name}_{k}": v for k, v in flatten(value).items()})
        else:
            out[f.name] = value
    return out


TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")


def cast(kind: type, name: str, value):
    """``value`` (a string from MLflow or JSON, or already typed) as ``kind``; one clear error if it is not."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in TRUE + FALSE:
            return str(value).lower() in TRUE
        raise IxmctsError(f"{name} must be true or false, got {value!r}")
    if kind in (int, float):
        if isinstance(value, bool):
            raise IxmctsError(f"{name} must be a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = None
        if number is None or (kind is int and not number.is_integer()):
            raise IxmctsError(f"{name} must be a {'whole number' if kind is int else 'number'}, got {str(value)!r}")
        return int(number) if kind is int else number
    return str(value)


def _option_name(name: str) -> str:
    # the paper's one-letter symbols keep their case: --K, --e, --T, --c
    return f"--{name}" if len(name) == 1 else f"--{name.replace('_', '-')}"


def config_options(cls, profiled=lambda name: False, skip: tuple[str, ...] = ()):
    """Click options for every (flat) field of ``cls``. A ``profiled`` field's option is empty
    by default (the profile's value); any other's default is the Config's."""
    import click

    class Setting(click.ParamType):
        def __init__(self, kind):
            self.kind, self.name = kind, {int: "integer", float: "float", bool: "boolean"}.get(kind, "text")

        def convert(self, value, param, ctx):
            if value in (None, "", "''", '""'):
                return None  # empty: the profile's value
            try:
                return cast(self.kind, param.name, value)
            except IxmctsError as exc:
                self.fail(str(exc), param, ctx)

    def decorate(fn):
        for name, (kind, default, help) in reversed(flat_fields(cls).items()):
            if name in skip:
                continue
            empty = profiled(name)
            fn = click.option(_option_name(name), name, type=Setting(kind), default="" if empty else default,
                              show_default="the profile's" if empty else True, help=help)(fn)
        return fn

    return decorate


def dataclass_options(cls, help: dict[str, str]):
    """Plain click options for every field of a parameter dataclass whose help lives in a
    ``help`` table (the human study's); no profile applies."""
    import click

    def decorate(fn):
        for f in reversed(dataclasses.fields(cls)):
            fn = click.option(_option_name(f.name), f.name, type=type(f.default), default=f.default, show_default=True,
                              help=help.get(f.name, ""))(fn)
        return fn

    return decorate


def option_type(option) -> type:
    """The Config type behind a generated option (for the test that ties them together)."""
    return getattr(option.type, "kind", str)


ON_ERROR: list = []  # callbacks given the message first (the MLflow entry points tag their run with it)


def reports_errors(fn):
    """Turn an ``IxmctsError`` into one line on stderr and exit status 2."""
    import click

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except IxmctsError as exc:
            for callback in ON_ERROR:
                callback(str(exc))
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)

    return wrapper
