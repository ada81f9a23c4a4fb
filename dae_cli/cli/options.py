"""Typer options generated from `Config`'s schema, so a setting's flag is declared once.

`with_settings("train")` gives a command one option per `Config` field that lists
"train" among its commands: its flag, help (with the real default), panel, choices
(an enum checked by the parser) and range (checked by the parser, with the same
message a config file gets). The command receives the values that were given as one
`settings` dict, None for each flag left out.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import typing
from typing import Any, Callable, Optional

import typer

from dae_cli import config as schema
from dae_cli.cli.completion import choices as complete_choices
from dae_cli.errors import UsageError


def with_settings(command: str, default_help: Optional[str] = None) -> Callable:
    """Adds the options of `command`'s settings to a function taking `settings`.

    `default_help` replaces "(default: X)" in every option's help, for a command whose
    defaults come from elsewhere (`evaluate`: the model's own settings).
    """
    fields = schema.settings(command)

    def decorate(function: Callable) -> Callable:
        own = inspect.signature(function)
        hints = typing.get_type_hints(function)  # the module's string annotations, resolved
        names = [field.name for field in fields]
        generated = [_parameter(field, command, default_help) for field in fields]
        mine = [
            p.replace(annotation=hints.get(p.name, p.annotation), kind=inspect.Parameter.KEYWORD_ONLY)
            for p in own.parameters.values()
            if p.name != "settings"
        ]
        # --help lists panels in the order their first option appears: the command's
        # own panel-less options and arguments first, then data, model, ... output.
        parameters = sorted(mine + generated, key=_panel_rank)

        def command_function(**values: Any) -> Any:
            settings = {name: _plain(values.pop(name)) for name in names}
            return function(**values, settings=settings)

        command_function.__signature__ = own.replace(parameters=parameters)
        command_function.__name__ = function.__name__
        command_function.__doc__ = function.__doc__
        return command_function

    return decorate


def _panel_rank(parameter: inspect.Parameter) -> int:
    panel = getattr(parameter.default, "rich_help_panel", None)
    return schema.PANELS.index(panel) if panel in schema.PANELS else -1


def choice_enum(name: str, values) -> type:
    """An Enum of `values`, which Typer turns into a choice checked by the parser."""
    return enum.Enum(name, [(value, value) for value in values], type=str)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _parameter(field, command: str, default_help: Optional[str]) -> inspect.Parameter:
    setting = schema.spec(field.name)
    base, _, _ = schema.value_type(field.name)
    flag = setting.flag or "--" + field.name.replace("_", "-")
    if base is bool and "/" not in flag:
        flag = f"{flag}/--no-{flag[2:]}"
    help_text = setting.command_help.get(command) or f"{setting.help} (default: {default_help or _default_text(field)})"
    if setting.command_help.get(command) is None and default_help is None and (bounds := schema.range_help(field.name)):
        help_text = f"{help_text[:-1]}; {bounds})"
    options: dict[str, Any] = {"help": help_text, "rich_help_panel": setting.panel, "show_default": False}
    if base is bool:
        annotation: Any = Optional[bool]
    elif setting.choices and base is str:
        annotation = Optional[choice_enum(field.name, setting.choices)]
        options["autocompletion"] = complete_choices(setting.choices)
    else:
        annotation = Optional[base if setting.parse is None else str]
        options["parser"] = _parser(field.name)
        options["metavar"] = setting.metavar or {int: "INTEGER", float: "NUMBER", str: "TEXT"}.get(base, "TEXT")
    option = typer.Option(None, flag, **options)
    return inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)


def _parser(key: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return schema.parse_flag(key, text)
        except UsageError as error:
            raise typer.BadParameter(str(error)) from None

    return parse


def _default_text(field) -> str:
    setting = schema.spec(field.name)
    if setting.default_text is not None:
        return setting.default_text
    default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, list):
        return ",".join(map(str, default))
    return f"{default:g}" if isinstance(default, float) else str(default)
