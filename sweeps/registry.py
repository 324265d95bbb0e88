"""Name → entry tables, filled where each entry is defined and looked up by the engine."""

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from slimsweep.sweeps.errors import ConfigError

Entry = TypeVar("Entry")


class Registry(Generic[Entry]):
    """Adding a technique or runtime registers it here; the trial loop never grows a branch."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def add(self, name: str, entry: Entry) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry

    def register(self, name: str) -> Callable[[Entry], Entry]:
        """Decorator form of `add`, for entries that are functions or classes."""

        def decorate(entry: Entry) -> Entry:
            self.add(name, entry)
            return entry

        return decorate

    def get(self, name: str) -> Entry:
        if name not in self._entries:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; registered: {', '.join(self.names()) or 'none'}"
            )
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
