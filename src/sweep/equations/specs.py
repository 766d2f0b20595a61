"""Descriptions of the models an equation takes and the wavefields it exposes."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    """One model (earth property) an equation takes, in the order ``models=[...]`` expects."""

    name: str
    unit: str
    description: str


@dataclass(frozen=True)
class FieldSpec:
    """One wavefield that sources can drive or receivers can record, with the aliases it answers to."""

    name: str
    aliases: tuple[str, ...]
    description: str

    def matches(self, name: str) -> bool:
        return name == self.name or name in self.aliases
