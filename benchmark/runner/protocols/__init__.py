"""The six protocols. Each is a function (ProtocolInputs, params) -> list[MetricRow]."""
from benchmark.runner.protocols.base import ProtocolInputs

__all__ = ["ProtocolInputs"]
