"""Network namespaces for real partitions (needs root and ``ip``; no iptables or netem here).

Layout for node *i* (namespace ``p2pmkt-<tag>-<i>``)::

    peer network   10.200.<k>.<i+1>/24  one bridge ``pb<tag>`` in the root namespace (no IP on
                                        it), one veth per node: nodes reach each other only here
    client link    10.201.<i>.2/24      a veth straight to the root namespace (10.201.<i>.1):
                                        the harness's clients reach each node here; with
                                        ip_forward off, nodes cannot reach each other this way

A partition takes a node's peer veth down (its client link stays up, so the harness can still
ask the isolated node what it committed); healing brings it up again. ``<k>`` is derived from
the tag so that two clusters on one machine do not share addresses.

This machine has no ``sch_netem`` (``tc qdisc … netem`` → "Specified qdisc kind is unknown"),
so these namespaces only cut; latency and loss come from the nodes' own test-only hook
(``p2pmkt.net.faults``, :meth:`Cluster.set_raft_fault`, faults ``slow-leader`` and
``lossy-net`` of :mod:`tools.chaos.scenario`).
"""

from __future__ import annotations

import os
import shutil
import subprocess


def available() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"p2pmkt-probe-{os.getpid()}"
    ok = subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return ok


def _ip(*args: str) -> None:
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")


class Netns:
    """The namespaces, links and addresses of one cluster (see the module docstring)."""

    def __init__(self, tag: str, n: int) -> None:
        self.tag = tag
        self.n = n
        self.k = int(tag, 16) % 250
        self.bridge = f"pb{tag}"
        self.made: list[str] = []

    def ns(self, i: int) -> str:
        return f"p2pmkt-{self.tag}-{i}"

    def peer_ip(self, i: int) -> str:
        return f"10.200.{self.k}.{i + 1}"

    def client_ip(self, i: int) -> str:
        return f"10.201.{self.k * 4 % 250 + i}.2"

    def _client_host_ip(self, i: int) -> str:
        return f"10.201.{self.k * 4 % 250 + i}.1"

    def peer_dev(self, i: int) -> str:
        return f"pp{self.tag}{i}"

    def setup(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        self.made.append("bridge")
        _ip("link", "set", self.bridge, "up")
        for i in range(self.n):
            ns = self.ns(i)
            _ip("netns", "add", ns)
            self.made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            # peer network: root end on the bridge, node end "eth0" in the namespace
            _ip("link", "add", self.peer_dev(i), "type", "veth", "peer", "name", f"pq{self.tag}{i}")
            _ip("link", "set", f"pq{self.tag}{i}", "netns", ns)
            _ip("-n", ns, "link", "set", f"pq{self.tag}{i}", "name", "eth0")
            _ip("link", "set", self.peer_dev(i), "master", self.bridge)
            _ip("link", "set", self.peer_dev(i), "up")
            _ip("-n", ns, "addr", "add", f"{self.peer_ip(i)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            # client link: root end with an address, node end "cli0"
            _ip("link", "add", f"pc{self.tag}{i}", "type", "veth", "peer", "name", f"pd{self.tag}{i}")
            _ip("link", "set", f"pd{self.tag}{i}", "netns", ns)
            _ip("-n", ns, "link", "set", f"pd{self.tag}{i}", "name", "cli0")
            _ip("addr", "add", f"{self._client_host_ip(i)}/24", "dev", f"pc{self.tag}{i}")
            _ip("link", "set", f"pc{self.tag}{i}", "up")
            _ip("-n", ns, "addr", "add", f"{self.client_ip(i)}/24", "dev", "cli0")
            _ip("-n", ns, "link", "set", "cli0", "up")

    def cut(self, i: int) -> None:
        """Isolate node ``i`` from the other nodes (its client link stays up)."""
        _ip("link", "set", self.peer_dev(i), "down")

    def heal(self, i: int) -> None:
        _ip("link", "set", self.peer_dev(i), "up")

    def command(self, i: int, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns(i), *argv]

    def teardown(self) -> None:
        for i in range(self.n):
            if self.ns(i) in self.made:
                subprocess.run(["ip", "netns", "del", self.ns(i)], capture_output=True)
            subprocess.run(["ip", "link", "del", f"pc{self.tag}{i}"], capture_output=True)
            subprocess.run(["ip", "link", "del", self.peer_dev(i)], capture_output=True)
        if "bridge" in self.made:
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        self.made.clear()
