"""Protocols (layer 7): one module per protocol, each a function (ProtocolInputs, params) -> list[MetricRow]; `catalog`
names them for the config; `table` is the row format they share.

May import: every layer up to execution. Never report, runner, publish or cli.
"""
from benchmark.protocols.base import ProtocolInputs

__all__ = ["ProtocolInputs"]
