"""The tests' NATS cluster: the one labchat-bench uses too (labchat/bench/nats_cluster.py)."""

from labchat.bench.nats_cluster import READY_TIMEOUT_S, NatsCluster, Node, nats_server_binary

__all__ = ["READY_TIMEOUT_S", "NatsCluster", "Node", "nats_server_binary"]
