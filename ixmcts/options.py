"""Command-line options made from the stage Configs, and the error handler every command shares.

A stage's Config dataclass is the one home of each parameter: its default (the paper's),
its type, its help (the paper's symbol and section) and, for an enumeration, its choices,
given with :func:`setting`. The ``ixmcts`` commands and the MLflow entry points build their
click options from it with :func:`config_options`; a nested dataclass (LoRA) becomes flat
``lora_*`` options. An option left empty takes the profile's value (``ixmcts.profiles``).

Conventions every command follows: an enumeration is a ``click.Choice``; a boolean is a flag
(``--closing`` / ``--no-closing``); a folder written to is ``--output-dir``; every option has
help. Commands are :class:`Command` (or in a :class:`Group`), which reads the words an
MLproject command has to pass for a flag and reports a bad option like any other bad input.
"""

from __future__ import annotations

import dataclasses
import functools
import sys

import click

from .errors import IxmctsError


def setting(default, help: str, choices: tuple[str, ...] = (), **kwargs):
    """A Config field with its help text (the paper's symbol and section where it has one) and,
    for an enumeration, the values it takes (its option is then a ``click.Choice``)."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": tuple(choices)}, **kwargs)


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


def field_choices(cls) -> dict[str, tuple[str, ...]]:
    """``{name: choices}`` for the (flat) fields of ``cls`` that are enumerations."""
    out = {}
    for f in dataclasses.fields(cls):
        default = _default(f)
        if dataclasses.is_dataclass(default):
            out.update({f"{f.name}_{k}": v for k, v in field_choices(type(default)).items()})
        elif f.metadata.get("choices"):
            out[f.name] = f.metadata["choices"]
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


EMPTY = (None, "", "''", '""')  # an empty MLflow parameter, also as the Kubernetes backend quotes it


def _option_name(name: str) -> str:
    # the paper's one-letter symbols keep their case: --K, --e, --T, --c
    return f"--{name}" if len(name) == 1 else f"--{name.replace('_', '-')}"


def choice(values, empty: bool = False):
    """A ``click.Choice`` of ``values``; with ``empty``, an empty value passes as None (the profile's)."""
    class Choice(click.Choice):
        def convert(self, value, param, ctx):
            if empty and value in EMPTY:
                return None
            return super().convert(value, param, ctx)

    return Choice(list(values))


def flag(name: str, default, help: str, *, show_default=True):
    """A boolean option as a flag pair ``--name / --no-name`` (default None: the profile's)."""
    option = _option_name(name)
    return click.option(f"{option}/--no-{option[2:]}", name, default=default, show_default=show_default,
                        help=help)


def config_options(cls, profiled=lambda name: False, skip: tuple[str, ...] = ()):
    """Click options for every (flat) field of ``cls``. A ``profiled`` field's option is empty
    by default (the profile's value); any other's default is the Config's."""
    class Setting(click.ParamType):
        def __init__(self, kind):
            self.kind, self.name = kind, {int: "integer", float: "float"}.get(kind, "text")

        def convert(self, value, param, ctx):
            if value in EMPTY:
                return None  # empty: the profile's value
            try:
                return cast(self.kind, param.name, value)
            except IxmctsError as exc:
                self.fail(str(exc), param, ctx)

    choices = field_choices(cls)

    def decorate(fn):
        for name, (kind, default, help) in reversed(flat_fields(cls).items()):
            if name in skip:
                continue
            empty = profiled(name)
            shown = "the profile's" if empty else True
            if kind is bool:
                fn = flag(name, None if empty else default, help, show_default=shown)(fn)
                continue
            kind_type = choice(choices[name], empty=empty) if name in choices else Setting(kind)
            fn = click.option(_option_name(name), name, type=kind_type, default="" if empty else default,
                              show_default=shown, help=help)(fn)
        return fn

    return decorate


def dataclass_options(cls, help: dict[str, str], choices: dict[str, tuple[str, ...]] | None = None):
    """Plain click options for every field of a parameter dataclass whose help lives in a
    ``help`` table (the human study's); no profile applies."""
    choices = choices or {}

    def decorate(fn):
        for f in reversed(dataclasses.fields(cls)):
            if isinstance(f.default, bool):
                fn = flag(f.name, f.default, help.get(f.name, ""))(fn)
                continue
            kind = choice(choices[f.name]) if f.name in choices else type(f.default)
            fn = click.option(_option_name(f.name), f.name, type=kind, default=f.default, show_default=True,
                              help=help.get(f.name, ""))(fn)
        return fn

    return decorate


def option_type(option) -> type:
    """The Config type behind a generated option (for the test that ties them together)."""
    if getattr(option, "is_bool_flag", False):
        return bool
    return getattr(option.type, "kind", str)


def scenario_option(default: str = "p4g", help: str = "the scenario: esc (emotional support) | p4g (persuasion for good)"):
    from .scenarios import SCENARIOS

    return click.option("--scenario", default=default, show_default=True, type=choice(SCENARIOS), help=help)


def profile_option(default: str = "cpu", help: str = "the settings an empty parameter takes (ixmcts.profiles)",
                   dest: str = "profile_name"):
    from .profiles import PROFILES

    return click.option("--profile", dest, default=default, show_default=True, type=choice(PROFILES),
                        help=help)


ON_ERROR: list = []  # callbacks given the message first (the MLflow entry points tag their run with it)


def report_error(message: str):
    """One line on stderr, the ON_ERROR callbacks, exit status 2: how every refused input ends."""
    for callback in ON_ERROR:
        callback(message)
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def reports_errors(fn):
    """Turn an ``IxmctsError`` into one line on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except IxmctsError as exc:
            report_error(str(exc))

    return wrapper


def flag_words(command, args: list[str]) -> list[str]:
    """``args`` with each boolean flag's value word read: an MLproject command cannot leave a
    word out, so it passes ``--closing {closing}``; ``--closing true`` is ``--closing``,
    ``--closing false`` is ``--no-closing``, and ``--closing ''`` is neither (the default)."""
    negation = {}
    for param in command.params:
        if isinstance(param, click.Option) and param.is_bool_flag and param.secondary_opts:
            for opt in param.opts:
                negation[opt] = param.secondary_opts[0]
    out, i = [], 0
    while i < len(args):
        word = args[i]
        value = args[i + 1] if i + 1 < len(args) else None
        if word in negation and value is not None and (value in EMPTY or value.lower() in TRUE + FALSE):
            if value not in EMPTY:
                out.append(word if value.lower() in TRUE else negation[word])
            i += 2
            continue
        out.append(word)
        i += 1
    return out


class Command(click.Command):
    """A command that reads MLproject flag words (:func:`flag_words`) and reports a bad option
    (an unknown scenario, a number that is not one) as one ``error:`` line, exit 2, like
    every other refused input: under ``mlflow run`` the run is tagged with why it failed."""

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, flag_words(self, args))

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            report_error(exc.format_message())


class Group(click.Group):
    """The ``ixmcts`` group: its commands are :class:`Command`."""

    command_class = Command
    group_class = type  # subgroups are Groups too
