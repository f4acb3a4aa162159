"""Directed road network: road classes, speeds, turn types and shortest paths.

The navigation plans over *edges* (a driver at the head of an edge chooses the next edge), so turn
types are a property of an (edge, next edge) pair. Everything is stored as flat NumPy arrays with
edges sorted by source node, so the out-edges of node v are ``out_ptr[v]:out_ptr[v + 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

ROAD_CLASSES: tuple[str, ...] = ("arterial", "collector", "local")
TURN_TYPES: tuple[str, ...] = ("left", "straight", "right", "uturn")
LEFT, STRAIGHT, RIGHT, UTURN = range(4)

#: Free-flow speeds (km/h) by road class where the data has none: central-Tokyo-like values.
DEFAULT_SPEED_KMH = np.array([32.0, 24.0, 16.0])


@dataclass
class Network:
    """A strongly connected directed road graph with everything the planner and simulator need."""

    name: str
    node_xy: np.ndarray  # (n, 2) metres, x east, y north
    edge_src: np.ndarray  # (m,) int32, sorted
    edge_dst: np.ndarray  # (m,) int32
    edge_len_m: np.ndarray  # (m,) float64
    edge_class: np.ndarray  # (m,) int8 index into ROAD_CLASSES
    edge_speed_kmh: np.ndarray  # (m,) float64 free-flow speed
    node_zone: np.ndarray  # (n,) int32
    zone_xy: np.ndarray  # (z, 2) metres
    drive_side: str = "left"
    # derived in __post_init__
    out_ptr: np.ndarray = field(init=False, repr=False)
    pair_from: np.ndarray = field(init=False, repr=False)
    pair_to: np.ndarray = field(init=False, repr=False)
    pair_turn: np.ndarray = field(init=False, repr=False)
    state_ptr: np.ndarray = field(init=False, repr=False)
    edge_time_min: np.ndarray = field(init=False, repr=False)
    edge_zone: np.ndarray = field(init=False, repr=False)
    in_edge_of: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        order = np.lexsort((self.edge_dst, self.edge_src))
        for name in ("edge_src", "edge_dst", "edge_len_m", "edge_class", "edge_speed_kmh"):
            setattr(self, name, np.ascontiguousarray(getattr(self, name)[order]))
        self.edge_src = self.edge_src.astype(np.int32)
        self.edge_dst = self.edge_dst.astype(np.int32)
        self.edge_class = self.edge_class.astype(np.int8)
        n = self.n_nodes
        self.out_ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.edge_src, minlength=n), out=self.out_ptr[1:])
        self.edge_time_min = self.edge_len_m / (self.edge_speed_kmh * 1000.0 / 60.0)
        self.edge_zone = self.node_zone[self.edge_dst].astype(np.int32)
        self._build_pairs()
        # one incoming edge per node: where a driver "stands" after a drop-off at that node
        self.in_edge_of = np.full(n, -1, dtype=np.int64)
        self.in_edge_of[self.edge_dst[::-1]] = np.arange(self.n_edges)[::-1]

    @property
    def n_nodes(self) -> int:
        return int(self.node_xy.shape[0])

    @property
    def n_edges(self) -> int:
        return int(self.edge_src.shape[0])

    @property
    def n_zones(self) -> int:
        return int(self.zone_xy.shape[0])

    @property
    def total_km(self) -> float:
        return float(self.edge_len_m.sum() / 1000.0)

    def _build_pairs(self) -> None:
        """Enumerate (edge, next edge) actions and classify each as a left/straight/right/U turn."""
        deg = (self.out_ptr[1:] - self.out_ptr[:-1])[self.edge_dst]
        self.state_ptr = np.zeros(self.n_edges + 1, dtype=np.int64)
        np.cumsum(deg, out=self.state_ptr[1:])
        self.pair_from = np.repeat(np.arange(self.n_edges, dtype=np.int32), deg)
        offset = np.arange(self.state_ptr[-1]) - np.repeat(self.state_ptr[:-1], deg)
        self.pair_to = (self.out_ptr[self.edge_dst[self.pair_from]] + offset).astype(np.int32)
        self.pair_turn = classify_turns(
            self.node_xy,
            self.edge_src[self.pair_from],
            self.edge_dst[self.pair_from],
            self.edge_dst[self.pair_to],
        )

    def shortest_paths_to(self, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Free-flow travel time (min) and length (m) of the fastest path from every node to each target.

        Returns two arrays of shape (len(targets), n_nodes). Lengths are summed along the fastest
        path's tree (pointer jumping over Dijkstra's predecessors), so time and distance describe the
        same route.
        """
        n = self.n_nodes
        key = self.edge_src.astype(np.int64) * n + self.edge_dst
        # fastest edge per (src, dst) pair: csr_matrix would *sum* parallel edges
        order = np.lexsort((self.edge_time_min, key))
        first = np.ones(order.size, dtype=bool)
        first[1:] = key[order][1:] != key[order][:-1]
        keep = order[first]
        rev = csr_matrix(
            (self.edge_time_min[keep], (self.edge_dst[keep], self.edge_src[keep])), shape=(n, n)
        )
        times, pred = dijkstra(rev, directed=True, indices=targets, return_predecessors=True)
        # lengths summed along each target's tree by pointer jumping (compiled; imported here so that
        # importing the network's constants does not load Numba)
        from .kernels import tree_lengths

        src, dst, hop = self.edge_src[keep], self.edge_dst[keep], self.edge_len_m[keep]
        by_src = np.argsort(src, kind="stable")
        out_ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(src, minlength=n), out=out_ptr[1:])
        length = tree_lengths(
            np.ascontiguousarray(pred, dtype=np.int64), np.asarray(targets, dtype=np.int64), out_ptr,
            dst[by_src].astype(np.int64), hop[by_src].astype(np.float64),
        )
        return times, length

    def summary(self) -> dict[str, float | int | str]:
        km = {
            c: round(float(self.edge_len_m[self.edge_class == i].sum() / 1000.0), 1)
            for i, c in enumerate(ROAD_CLASSES)
        }
        return {
            "name": self.name,
            "nodes": self.n_nodes,
            "edges": self.n_edges,
            "zones": self.n_zones,
            "km": round(self.total_km, 1),
            **{f"km_{c}": v for c, v in km.items()},
        }


def classify_turns(
    xy: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray
) -> np.ndarray:
    """Turn type of the move a -> b -> c from the heading change (x east, y north).

    A counter-clockwise change of more than 30 degrees is a left turn, clockwise a right turn, more than
    150 degrees (or going straight back to ``a``) a U-turn.
    """
    v1 = xy[b] - xy[a]
    v2 = xy[c] - xy[b]
    cross = v1[:, 0] * v2[:, 1] - v1[:, 1] * v2[:, 0]
    dot = (v1 * v2).sum(axis=1)
    angle = np.degrees(np.arctan2(cross, dot))
    turn = np.full(a.shape, STRAIGHT, dtype=np.int8)
    turn[angle > 30.0] = LEFT
    turn[angle < -30.0] = RIGHT
    turn[(np.abs(angle) > 150.0) | (c == a)] = UTURN
    return turn


def largest_strong_component(
    n_nodes: int, src: np.ndarray, dst: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Nodes kept (bool mask) and edges kept (bool mask) of the largest strongly connected component."""
    g = csr_matrix((np.ones(src.size), (src, dst)), shape=(n_nodes, n_nodes))
    _, labels = connected_components(g, directed=True, connection="strong")
    big = np.bincount(labels).argmax()
    node_keep = labels == big
    return node_keep, node_keep[src] & node_keep[dst]


def reindex(node_keep: np.ndarray, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map old node ids of kept edges to compact new ids."""
    new_id = np.cumsum(node_keep) - 1
    return new_id[src].astype(np.int32), new_id[dst].astype(np.int32)
