"""The settings of ``phyvae.train``: those of ``phyvae train``, read from the
command's own definitions (names, help, defaults, choices), and the command
line that a set of keywords stands for."""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from typing import List, Optional

from . import _native


@dataclass(frozen=True)
class Setting:
    """One setting of ``phyvae train``."""

    name: str
    """Keyword in Python (the flag without ``--``, ``-`` as ``_``)."""
    help: str
    """What it means, as ``phyvae train --help`` says."""
    default: Optional[str]
    """The command's default, or None where the preset (or ``config``) decides."""
    is_flag: bool
    """A switch (True or False) rather than a value."""
    choices: List[str]
    """The values it accepts, when they are a fixed list."""

    @property
    def flag(self) -> str:
        """The command-line flag."""
        return "--" + self.name.replace("_", "-")


#: Every setting of ``phyvae train``, in the command's order. ``out`` is
#: ``phyvae.train``'s second parameter.
SETTINGS = [Setting(*s) for s in _native.train_settings() if s[0] != "out"]
BY_NAME = {s.name: s for s in SETTINGS}


def value_text(name: str, value) -> str:
    """A keyword's value as the command line writes it."""
    if isinstance(value, bool):
        raise ValueError(f"{name}: expected a value, got {value!r}")
    if isinstance(value, (list, tuple)):
        sep = ":" if name == "beta" else ","
        return sep.join(value_text(name, v) for v in value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def command_line(command: str, image: str, out: str, settings: dict) -> list:
    """``phyvae COMMAND IMAGE --out OUT --flag=value ...`` for ``settings``.

    Raises TypeError for an unknown keyword and ValueError for a value of the
    wrong kind; the command's parser checks the rest.
    """
    argv = ["phyvae", command, image, "--out", out]
    for name, value in settings.items():
        s = BY_NAME.get(name)
        if s is None:
            raise TypeError(f"unknown setting {name!r} (help(phyvae.train) lists them)")
        if value is None:
            continue
        if s.is_flag:
            if not isinstance(value, bool):
                raise ValueError(f"{name} is a switch: True or False, got {value!r}")
            if value:
                argv.append(s.flag)
        else:
            argv.append(f"{s.flag}={value_text(name, value)}")
    return argv


def settings_doc() -> str:
    """The list of settings for ``help(phyvae.train)``: ``name=default`` (None:
    chosen by the preset, as the text after it says), then what it means."""
    lines = []
    for s in SETTINGS:
        default = repr(s.default) if s.default is not None else ("False" if s.is_flag else "None")
        head = f"{s.name}={default}"
        if s.choices:
            head += ": one of " + ", ".join(s.choices)
        lines.append(head)
        text = " ".join(s.help.split())
        lines.extend(textwrap.wrap(text, 72, initial_indent="    ", subsequent_indent="    "))
    return "\n".join(lines)
