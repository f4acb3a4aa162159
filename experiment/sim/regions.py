"""Regions: a road network plus where people hail taxis (hot spots, zones) and where taxis start (depots).

``tokyo_central`` is a synthetic grid shaped like central Tokyo (arterials every ~1.2 km, one-way back
streets, a railway that only main roads cross, stations / nightlife / offices where the real ones are
relative to each other). ``ring_city`` is a synthetic ring-and-radial city. ``coquimbo`` is the real
OpenStreetMap network of Coquimbo, Chile, shipped in ``data/coquimbo.npz`` (ODbL, see
``data/COQUIMBO_ATTRIBUTION.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from .network import Network, largest_strong_component, reindex

REGIONS: tuple[str, ...] = ("tokyo_central", "ring_city", "coquimbo")
HOTSPOT_KINDS: tuple[str, ...] = ("station", "nightlife", "office")


@dataclass(frozen=True)
class Hotspot:
    name: str
    kind: str  # one of HOTSPOT_KINDS
    x: float  # metres
    y: float
    sigma_m: float
    weight: float  # relative street-hail mass


@dataclass(frozen=True)
class Region:
    network: Network
    hotspots: tuple[Hotspot, ...]
    background: np.ndarray  # (edges,) relative hail density of background demand on each edge
    zone_attraction: np.ndarray  # (zones,) destination attractiveness for the gravity model
    depots: np.ndarray  # node ids where shifts start and end
    drive_side: str
    gateways: np.ndarray  # node ids of expressway entrances used by trips that leave the region

    @property
    def name(self) -> str:
        return self.network.name


CLASS_HAIL_DENSITY = np.array([1.6, 1.0, 0.15])  # hails per km relative to a collector street


@lru_cache(maxsize=4)
def build_region(name: str, seed: int = 0) -> Region:
    """Build (and cache in-process) a region by name."""
    builders = {"tokyo_central": _tokyo_central, "ring_city": _ring_city, "coquimbo": _coquimbo}
    if name not in builders:
        raise ValueError(f"unknown region {name!r}; allowed: {', '.join(REGIONS)}")
    return builders[name](np.random.default_rng(seed))


def _edges_midpoints(net: Network) -> np.ndarray:
    return 0.5 * (net.node_xy[net.edge_src] + net.node_xy[net.edge_dst])


def _zone_attraction(net: Network, hotspots: tuple[Hotspot, ...], base: np.ndarray) -> np.ndarray:
    attraction = base.astype(float).copy()
    for h in hotspots:
        d2 = ((net.zone_xy - [h.x, h.y]) ** 2).sum(axis=1)
        attraction += h.weight * np.exp(-d2 / (2 * (h.sigma_m * 2.5) ** 2))
    return attraction / attraction.mean()


def _network_from_lines(
    name: str,
    xy: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    cls: np.ndarray,
    oneway: np.ndarray,
    flip: np.ndarray,
    zone_of_node: np.ndarray,
    zone_xy: np.ndarray,
    speed_kmh: np.ndarray,
    drive_side: str,
) -> Network:
    """Turn undirected street segments into a strongly connected directed network."""
    a, b = np.where(flip, b, a), np.where(flip, a, b)
    src = np.concatenate([a, b[~oneway]])
    dst = np.concatenate([b, a[~oneway]])
    ecls = np.concatenate([cls, cls[~oneway]])
    node_keep, edge_keep = largest_strong_component(xy.shape[0], src, dst)
    s, d = reindex(node_keep, src[edge_keep], dst[edge_keep])
    xy2 = xy[node_keep]
    length = np.hypot(*(xy2[s] - xy2[d]).T)
    ecls = ecls[edge_keep].astype(np.int8)
    return Network(
        name=name,
        node_xy=xy2,
        edge_src=s,
        edge_dst=d,
        edge_len_m=length,
        edge_class=ecls,
        edge_speed_kmh=speed_kmh[ecls],
        node_zone=zone_of_node[node_keep].astype(np.int32),
        zone_xy=zone_xy,
        drive_side=drive_side,
    )


# --------------------------------------------------------------------------------------------------
# tokyo_central: 60 x 50 jittered grid, 120 m blocks (7.1 km x 5.9 km), about 3,000 nodes
# --------------------------------------------------------------------------------------------------

_TOKYO_HOTSPOTS = (
    Hotspot("Tokyo Station", "station", 6080, 3120, 350, 3.0),
    Hotspot("Shinjuku Station", "station", 1040, 3520, 350, 3.5),
    Hotspot("Shibuya Station", "station", 1280, 800, 350, 2.5),
    Hotspot("Shinagawa Station", "station", 5040, 400, 350, 1.8),
    Hotspot("Ikebukuro Station", "station", 1280, 5600, 350, 2.0),
    Hotspot("Ueno Station", "station", 6320, 5280, 350, 1.2),
    Hotspot("Iidabashi Station", "station", 3920, 4240, 300, 0.8),
    Hotspot("Ginza", "nightlife", 5920, 2240, 400, 2.5),
    Hotspot("Roppongi", "nightlife", 3440, 1360, 400, 2.5),
    Hotspot("Kabukicho", "nightlife", 1200, 3920, 350, 3.0),
    Hotspot("Akasaka", "nightlife", 3840, 2080, 350, 1.2),
    Hotspot("Marunouchi", "office", 5680, 3360, 450, 2.5),
    Hotspot("Nishi-Shinjuku", "office", 640, 3360, 450, 2.0),
    Hotspot("Toranomon", "office", 4480, 2160, 450, 1.8),
    Hotspot("Otemachi", "office", 5600, 3760, 400, 1.5),
)


def _grid_segments(nx: int, ny: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids = np.arange(nx * ny).reshape(ny, nx)
    ha, hb = ids[:, :-1].ravel(), ids[:, 1:].ravel()  # horizontal: along row j
    va, vb = ids[:-1, :].ravel(), ids[1:, :].ravel()  # vertical: along column i
    row = np.concatenate([np.repeat(np.arange(ny), nx - 1), np.full(va.size, -1)])
    col = np.concatenate([np.full(ha.size, -1), np.tile(np.arange(nx), ny - 1)])
    return np.concatenate([ha, va]), np.concatenate([hb, vb]), np.stack([row, col], axis=1)


def _tokyo_central(rng: np.random.Generator) -> Region:
    nx, ny, block = 60, 50, 120.0
    gx, gy = np.meshgrid(np.arange(nx) * block, np.arange(ny) * block)
    xy = np.stack([gx.ravel(), gy.ravel()], axis=1) + rng.uniform(-25, 25, (nx * ny, 2))
    a, b, rc = _grid_segments(nx, ny)
    line = np.where(rc[:, 0] >= 0, rc[:, 0], rc[:, 1])  # index of the street the segment lies on
    cls = np.full(a.size, 2, dtype=np.int8)
    cls[line % 4 == 0] = 1
    cls[line % 8 == 0] = 0
    local = cls == 2
    # a railway between columns 29 and 30: only main roads cross it
    crosses_rail = (rc[:, 0] >= 0) & (a % nx == 29)
    drop = (local & (rng.random(a.size) < 0.07)) | (crosses_rail & local)
    keep = ~drop
    a, b, cls, local = a[keep], b[keep], cls[keep], local[keep]
    oneway = local & (rng.random(a.size) < 0.35)
    flip = rng.random(a.size) < 0.5
    zx, zy = 10, 8
    zone_of_node = (
        np.clip((xy[:, 1] / (ny * block) * zy).astype(int), 0, zy - 1) * zx
        + np.clip((xy[:, 0] / (nx * block) * zx).astype(int), 0, zx - 1)
    )
    zgx, zgy = np.meshgrid((np.arange(zx) + 0.5) * nx * block / zx, (np.arange(zy) + 0.5) * ny * block / zy)
    zone_xy = np.stack([zgx.ravel(), zgy.ravel()], axis=1)
    net = _network_from_lines(
        "tokyo_central", xy, a, b, cls, oneway, flip, zone_of_node, zone_xy,
        np.array([30.0, 24.0, 16.0]), "left",
    )
    mid = _edges_midpoints(net)
    # denser street life towards the east (Chiyoda/Chuo) than the west edge of the box
    background = CLASS_HAIL_DENSITY[net.edge_class] * (0.7 + 0.6 * mid[:, 0] / (nx * block))
    depots = _spread_depots(net, rng, 8)
    return Region(
        network=net,
        hotspots=_TOKYO_HOTSPOTS,
        background=background,
        zone_attraction=_zone_attraction(net, _TOKYO_HOTSPOTS, np.ones(net.n_zones)),
        depots=depots,
        drive_side="left",
        gateways=_spread_depots(net, np.random.default_rng(11), 4),
    )


def _spread_depots(net: Network, rng: np.random.Generator, k: int) -> np.ndarray:
    """Depots on main roads, spread over the region (farthest-point sampling)."""
    on_main = np.unique(net.edge_src[net.edge_class <= 1])
    chosen = [int(rng.choice(on_main))]
    d = np.hypot(*(net.node_xy[on_main] - net.node_xy[chosen[0]]).T)
    for _ in range(k - 1):
        nxt = int(on_main[np.argmax(d)])
        chosen.append(nxt)
        d = np.minimum(d, np.hypot(*(net.node_xy[on_main] - net.node_xy[nxt]).T))
    return np.array(chosen, dtype=np.int64)


# --------------------------------------------------------------------------------------------------
# ring_city: 24 rings x 48 spokes (radius 0.4-5 km), a central station where the spokes meet
# --------------------------------------------------------------------------------------------------

_RING_HOTSPOTS = (
    Hotspot("Central Station", "station", 0, 0, 400, 4.0),
    Hotspot("Old Town", "nightlife", 800, 600, 400, 2.0),
    Hotspot("Riverside Bars", "nightlife", -1200, -500, 350, 1.2),
    Hotspot("City Hall", "office", -500, 300, 450, 2.0),
    Hotspot("Business Park", "office", 2500, -1500, 500, 1.5),
    Hotspot("North Station", "station", 0, 3500, 350, 1.0),
    Hotspot("East Station", "station", 3500, 0, 350, 1.0),
    Hotspot("South Station", "station", 0, -3500, 350, 1.0),
    Hotspot("West Station", "station", -3500, 0, 350, 1.0),
)


def _ring_city(rng: np.random.Generator) -> Region:
    n_rings, n_spokes = 24, 48
    radii = 400.0 + 200.0 * np.arange(n_rings)
    ang = 2 * np.pi * np.arange(n_spokes) / n_spokes
    r, t = np.meshgrid(radii, ang, indexing="ij")  # (rings, spokes)
    xy = np.stack([(r * np.cos(t)).ravel(), (r * np.sin(t)).ravel()], axis=1)
    xy = np.vstack([xy, [[0.0, 0.0]]]) + rng.uniform(-15, 15, (xy.shape[0] + 1, 2))
    centre = n_rings * n_spokes
    ids = np.arange(n_rings * n_spokes).reshape(n_rings, n_spokes)
    ring_a, ring_b = ids.ravel(), np.roll(ids, -1, axis=1).ravel()
    ring_idx = np.repeat(np.arange(n_rings), n_spokes)
    spoke_a, spoke_b = ids[:-1].ravel(), ids[1:].ravel()
    spoke_idx = np.tile(np.arange(n_spokes), n_rings - 1)
    hub_spokes = np.arange(0, n_spokes, 6)
    a = np.concatenate([ring_a, spoke_a, np.full(hub_spokes.size, centre)])
    b = np.concatenate([ring_b, spoke_b, ids[0, hub_spokes]])
    cls = np.concatenate([
        np.where(np.isin(ring_idx, [3, 10, 18]), 0, np.where(ring_idx % 3 == 0, 1, 2)),
        np.where(spoke_idx % 6 == 0, 0, np.where(spoke_idx % 2 == 0, 1, 2)),
        np.zeros(hub_spokes.size, dtype=int),
    ]).astype(np.int8)
    local = cls == 2
    keep = ~(local & (rng.random(a.size) < 0.05))
    a, b, cls, local = a[keep], b[keep], cls[keep], local[keep]
    oneway = local & (rng.random(a.size) < 0.3)
    flip = rng.random(a.size) < 0.5
    # zones: centre + 5 radial bands x 8 sectors
    rad = np.hypot(xy[:, 0], xy[:, 1])
    band = np.clip(np.searchsorted([800, 1600, 2600, 3800], rad), 0, 4)
    sector = ((np.arctan2(xy[:, 1], xy[:, 0]) % (2 * np.pi)) / (2 * np.pi) * 8).astype(int) % 8
    zone_of_node = np.where(rad < 500, 0, 1 + band * 8 + sector)
    zr = np.array([1200, 2100, 3200, 4400, 5000])
    zt = (np.arange(8) + 0.5) * 2 * np.pi / 8
    zone_xy = np.vstack([[0.0, 0.0], np.stack([np.outer(zr, np.cos(zt)).ravel(), np.outer(zr, np.sin(zt)).ravel()], 1)])
    net = _network_from_lines(
        "ring_city", xy, a, b, cls, oneway, flip, zone_of_node, zone_xy,
        np.array([40.0, 30.0, 20.0]), "left",
    )
    mid = _edges_midpoints(net)
    background = CLASS_HAIL_DENSITY[net.edge_class] * np.exp(-np.hypot(mid[:, 0], mid[:, 1]) / 3000.0)
    return Region(
        network=net,
        hotspots=_RING_HOTSPOTS,
        background=background,
        zone_attraction=_zone_attraction(net, _RING_HOTSPOTS, np.ones(net.n_zones)),
        depots=_spread_depots(net, rng, 6),
        drive_side="left",
        gateways=_spread_depots(net, np.random.default_rng(11), 4),
    )


# --------------------------------------------------------------------------------------------------
# coquimbo: real OSM network (aequilibrae reference files), right-hand traffic
# --------------------------------------------------------------------------------------------------

def _coquimbo(rng: np.random.Generator) -> Region:
    with resources.files("experiment.sim").joinpath("data/coquimbo.npz").open("rb") as fh:
        z = dict(np.load(fh, allow_pickle=False))
    fill = np.array([50.0, 40.0, 30.0])
    speed = np.where(np.isfinite(z["edge_speed_kmh"]), z["edge_speed_kmh"], fill[z["edge_class"]])
    net = Network(
        name="coquimbo",
        node_xy=np.stack([z["node_x"], z["node_y"]], axis=1),
        edge_src=z["edge_src"],
        edge_dst=z["edge_dst"],
        edge_len_m=np.maximum(z["edge_len_m"], 1.0),
        edge_class=z["edge_class"],
        edge_speed_kmh=np.clip(speed, 10.0, 100.0),
        node_zone=z["node_zone"],
        zone_xy=np.stack([z["zone_x"], z["zone_y"]], axis=1),
        drive_side="right",
    )
    pop, emp = z["zone_pop"], z["zone_emp"]
    # the data carries population but no employment: the most populous zones act as centres
    top = np.argsort(-(pop + emp))[:6]
    hotspots = tuple(
        Hotspot(f"zone {i} ({'centre' if k < 2 else 'jobs'})", "station" if k < 2 else "office",
                float(net.zone_xy[i, 0]), float(net.zone_xy[i, 1]), 500.0, 2.0 if k < 2 else 1.0)
        for k, i in enumerate(top)
    )
    density = (pop + 2 * emp) / max(float((pop + 2 * emp).mean()), 1.0)
    mid_zone = net.edge_zone
    background = CLASS_HAIL_DENSITY[net.edge_class] * (0.3 + density[mid_zone])
    return Region(
        network=net,
        hotspots=hotspots,
        background=background,
        zone_attraction=_zone_attraction(net, hotspots, 0.5 + density),
        depots=_spread_depots(net, rng, 10),
        drive_side="right",
        gateways=_spread_depots(net, np.random.default_rng(11), 4),
    )
