"""One small registry type behind every name a user can write in an experiment file.

Models, dataset readers, protocols, KD losses, baselines and freeze policies each keep one
:class:`Registry`. Config validation, the CLI's ``choices=`` and ``--help`` texts, and the
report's ordering and display names all read the registry, so a name lives in one place, and a
piece registered from outside the package (``register_model``, ``register_reader``, ...) is
accepted everywhere a built-in one is.

Entries keep their registration order: that order is the report's order.
``docs/ARCHITECTURE.md`` lists the registries and shows how to add to each.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["Entry", "Registry"]

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered name.

    Attributes
    ----------
    name : str
        What a user writes (``"cnn"``, ``"subject"``, ``"soft"``).
    obj : object
        What the name builds or runs (a class, a factory, a function).
    description : str
        One line for ``--help`` and the docs.
    display : str
        Name shown in reports (defaults to ``name``).
    info : dict
        Anything else the owner of the registry needs (a reader's ``detect``, a protocol's
        grouping column).
    """

    name: str
    obj: T
    description: str = ""
    display: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Display name (``display`` or else ``name``)."""
        return self.display or self.name


class Registry(Generic[T]):
    """Names of one concept, in registration order.

    Parameters
    ----------
    kind : str
        What the names are, for messages (``"model"``, ``"protocol"``).
    key : str
        The experiment-file key or CLI flag that takes one of the names, for messages
        (``"[models] backbones"``, ``"--protocol"``).
    """

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, obj: T, *, description: str = "", display: str = "",
                 overwrite: bool = False, **info: Any) -> T:
        """Add ``name``; returns ``obj`` so that it can be used as a decorator's result.

        Raises
        ------
        TypeError
            ``name`` is not a non-empty string.
        ValueError
            ``name`` is taken and ``overwrite`` is false.
        """
        if not isinstance(name, str) or not name.strip():
            raise TypeError(f"A {self.kind} name must be a non-empty str, got {name!r}.")
        if name in self._entries and not overwrite:
            raise ValueError(f"A {self.kind} named {name!r} is already registered; pick another "
                             f"name, or pass overwrite=True to replace it.")
        self._entries[name] = Entry(name, obj, description, display, dict(info))
        return obj

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a no-op when absent); for tests and plug-ins."""
        self._entries.pop(name, None)

    def names(self) -> tuple[str, ...]:
        """Registered names, in registration order."""
        return tuple(self._entries)

    def entries(self) -> tuple[Entry[T], ...]:
        """Registered entries, in registration order."""
        return tuple(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def expected(self) -> str:
        """``'a', 'b', 'c'``: the names, quoted, for messages."""
        return ", ".join(repr(n) for n in self._entries)

    def entry(self, name: Any, key: str | None = None) -> Entry[T]:
        """The entry of ``name``, or a one-line error naming the key and the choices.

        Parameters
        ----------
        name : str
        key : str, optional
            Overrides the registry's key in the message (``"[models] student"``).
        """
        if not isinstance(name, str) or name not in self._entries:
            raise ValueError(f"Invalid value for {key or self.key!r}: expected one of "
                             f"{self.expected()}, got {name!r}.")
        return self._entries[name]

    def get(self, name: Any, key: str | None = None) -> T:
        """The object registered as ``name`` (see :meth:`entry` for the error)."""
        return self.entry(name, key).obj

    def order(self, name: str) -> int:
        """Position of ``name`` for sorting (unknown names last)."""
        try:
            return list(self._entries).index(name)
        except ValueError:
            return len(self._entries)

    def label(self, name: str) -> str:
        """Display name of ``name`` (``name`` itself when unknown)."""
        entry = self._entries.get(name)
        return entry.label if entry is not None else name

    def help_text(self) -> str:
        """``name: description`` lines, for ``--help`` and docs."""
        return "; ".join(f"{e.name}: {e.description}" if e.description else e.name
                         for e in self._entries.values())
