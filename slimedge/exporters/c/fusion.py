"""Loop fusion for the generated step: consecutive element-wise ops become one loop.

Both emitters (float, :mod:`.emit_float`; full integer, :mod:`.emit_int`) walk the step graph in
order. Every run of consecutive element-wise ops of one size (pre-activation sum -> gates -> cell
update -> g(c') -> h) is written as one loop over the elements with scalar temporaries; a value
gets an array only where something after its loop reads it (:attr:`Group.escapes`). A new state
produced in such a loop is written there (:attr:`Group.stores`) when nothing after the loop reads
the old state of its layer (through aliases too): element i of the old state is read, in that
loop, only before element i of the new one is written. So the step's scratch is the matmul
results and the few values that cross loops: O(n) with a small constant.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ... import ir

ELEMENTWISE = ("add", "mul", "sigmoid", "tanh", "clip")
STATE_OF_STACK = {"h_next": "h", "c_next": "c"}


@dataclass
class Group:
    """One fused loop: nodes ``start``..``end`` (inclusive) of ``size`` elements."""

    start: int
    end: int
    size: int
    escapes: set[str]
    stores: dict[str, tuple[str, int]]  # value -> (state "h"/"c", layer) written in the loop
    body: list[str] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)


class FusedRow:
    """What both emitters' rows share: walking the nodes, each run of a :func:`plan` group
    written as one loop (``group``: the loop being written; ``scalar``: its scalar temporaries;
    ``lines``: the function's body)."""

    group: Group | None = None
    streams = 0  # rows written for a block of up to this many streams (0: one stream)

    def flush(self) -> None:
        """Close the fused element-wise loop: the arrays it fills, then the one loop."""
        if self.group is None:
            return
        g, self.group = self.group, None
        self.scalar.clear()
        self.lines.extend(self.loop_head(g.size))
        self.lines.extend(g.body + g.tail)
        self.lines.append("    }")

    def loop_head(self, size: int) -> list[str]:
        """The head of a fused loop over ``size`` elements (``i``), opening one brace."""
        # a block of streams (stream-major arrays): the loop once per stream s < nb
        return ((["    for (int s = 0; s < nb; s++)"] if self.streams else [])
                + [f"    for (int i = 0; i < {size}; i++) {{"])

    def walk(self, nodes: list[ir.Node], groups: dict[int, Group], ops: dict) -> None:
        """Each node through ``ops`` (op -> emitting function), inside its group's loop where it
        has one."""
        end = -1
        for k, n in enumerate(nodes):
            if k in groups:
                self.flush()
                self.group, end = groups[k], groups[k].end
            elif k > end:
                self.flush()
            ops[n.op](self, n)
        self.flush()


TRANSCENDENTAL = ("sigmoid", "tanh")


def plan(nodes: list[ir.Node], size, chains: bool = False) -> dict[int, Group]:
    """The fused loops of ``nodes`` keyed by their first node's index; ``size(value)`` is a
    value's element count. ``chains``: a tanh or sigmoid of a value that an earlier one in the
    loop fed (tanh(c') after the gates) starts a new loop, so that no loop holds two of them in
    a row of dependences (vectorised, such a chain waits on itself: measured 1.4x slower than
    two loops on a desktop CPU)."""
    consumers: dict[str, list[int]] = {}
    for k, n in enumerate(nodes):
        for v in n.inputs:
            consumers.setdefault(v, []).append(k)
    runs, k = {}, 0
    while k < len(nodes):
        end = k
        if nodes[k].op in ELEMENTWISE:
            s = size(nodes[k].outputs[0])
            after = _after_transcendental(nodes[k], set())
            while (end + 1 < len(nodes) and nodes[end + 1].op in ELEMENTWISE
                   and size(nodes[end + 1].outputs[0]) == s
                   and not (chains and nodes[end + 1].op in TRANSCENDENTAL
                            and any(v in after for v in nodes[end + 1].inputs))):
                end += 1
                after |= _after_transcendental(nodes[end], after)
            runs[k] = end
        k = end + 1
    prod = {o: k for k, n in enumerate(nodes) for o in n.outputs}
    last_read: dict[tuple[str, int], int] = {}  # (state, layer) -> last node reading the old one
    for n in nodes:
        if n.op == "unstack":
            for k, o in enumerate(n.outputs):
                seen, todo, last = set(), [o], -1
                while todo:
                    v = todo.pop()
                    for c in consumers.get(v, []):
                        last = max(last, c)
                        if nodes[c].op in ("identity", "split") and c not in seen:
                            seen.add(c)
                            todo.extend(nodes[c].outputs)
                last_read[(n.inputs[0], k)] = last
    state_of = {}
    for n in nodes:
        if n.op == "stack":
            for k, v in enumerate(n.inputs):
                state_of[v] = (STATE_OF_STACK[n.outputs[0]], k)
    groups = {}
    for k, end in runs.items():
        outs = {o for m in nodes[k:end + 1] for o in m.outputs}
        escapes = {o for o in outs if o == "y" or not consumers.get(o)
                   or any(c < k or c > end for c in consumers.get(o, []))}
        stores: dict[str, tuple[str, int]] = {}
        for o in sorted(outs):
            if o in state_of and o in prod and nodes[prod[o]].op in ELEMENTWISE:
                if last_read.get(state_of[o], 10 ** 9) <= end and state_of[o] not in stores.values():
                    stores[o] = state_of[o]
        escapes = {o for o in escapes
                   if o not in stores or any(c < k or c > end for c in consumers.get(o, [])
                                             if nodes[c].op != "stack")}
        groups[k] = Group(k, end, size(nodes[k].outputs[0]), escapes, stores)
    return groups


def _after_transcendental(n: ir.Node, after: set[str]) -> set[str]:
    """``n``'s outputs where it is a tanh or sigmoid or reads a value in ``after``."""
    if n.op in TRANSCENDENTAL or any(v in after for v in n.inputs):
        return set(n.outputs)
    return set()


def matmul_sums(nodes: list[ir.Node]) -> dict[str, tuple[str, str]]:
    """The sums of two matmul results that nothing else reads (W·x + b + U·h), which the second
    matmul can compute by accumulating onto the first's result: second's result -> (first's
    result, the sum). Only a second matmul without a bias of its own qualifies."""
    readers: dict[str, int] = {}
    for n in nodes:
        for v in n.inputs:
            readers[v] = readers.get(v, 0) + 1
    made = {o: k for k, n in enumerate(nodes) for o in n.outputs}
    out = {}
    for n in nodes:
        if n.op != "add" or len(n.inputs) != 2 or n.inputs[0] == n.inputs[1]:
            continue
        src = [made.get(v) for v in n.inputs]
        if any(j is None or nodes[j].op != "matmul" or readers[v] != 1
               for j, v in zip(src, n.inputs)):
            continue
        first, second = sorted(src)
        if len(nodes[second].inputs) == 2:
            out[nodes[second].outputs[0]] = (nodes[first].outputs[0], n.outputs[0])
    return out


__all__ = ["plan", "Group", "ELEMENTWISE", "matmul_sums"]
