"""Name -> neuron class, for configuration files, the CLI and the contract tests."""

from __future__ import annotations

from spikekit.neurons._base import Neuron

_NEURONS: dict[str, type[Neuron]] = {}


def register_neuron(cls: type[Neuron]) -> type[Neuron]:
    """Register a neuron class under its lower-case class name (usable as a decorator)."""
    _NEURONS[cls.__name__.lower()] = cls
    return cls


def get_neuron(name: str | type[Neuron]) -> type[Neuron]:
    """Neuron class by name (case-insensitive) or the class itself.

    Raises:
        ValueError: unknown name; the message lists the registered ones.
    """
    if isinstance(name, type) and issubclass(name, Neuron):
        return name
    cls = _NEURONS.get(str(name).lower())
    if cls is None:
        raise ValueError(f"unknown neuron {name!r}; expected one of {', '.join(list_neurons())}")
    return cls


def list_neurons() -> list[str]:
    """Registered neuron names."""
    return sorted(_NEURONS)
