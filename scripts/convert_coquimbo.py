#!/usr/bin/env python3
"""Convert AequilibraE's Coquimbo (Chile) reference network into ``coquimbo.npz``.

The source is ``aequilibrae/reference_files/coquimbo.zip`` inside the AequilibraE wheel
(OpenStreetMap-derived road network + 133 traffic zones). The wheel is only read as a zip
archive -- aequilibrae is never installed or imported -- and the SpatiaLite database is read
with the stdlib ``sqlite3`` module; geometry blobs are decoded here, so the SpatiaLite
extension is not needed.

Usage::

    pip download --no-deps aequilibrae==1.7.2 -d /tmp/aeq      # any platform wheel will do
    python scripts/convert_coquimbo.py /tmp/aeq/aequilibrae-1.7.2-*.whl

The argument may also be ``coquimbo.zip`` itself or an extracted ``project_database.sqlite``.
Outputs (default ``experiment/sim/data/``): ``coquimbo.npz`` and ``COQUIMBO_ATTRIBUTION.md``.

npz contents
------------
node_x, node_y      float64 metres, local equirectangular projection around the mean lat/lon
                    of the kept nodes (x east, y north)
edge_src, edge_dst  int32 node indices of the directed car graph, sorted by (src, dst)
edge_len_m          float64 link ``distance`` (metres)
edge_class          int8 0 = arterial, 1 = collector, 2 = local
edge_speed_kmh      float64 directional OSM speed where present and > 0, else NaN
zone_x, zone_y      float64 zone centroid positions (same projection)
zone_pop, zone_emp  float64 population / employment (0 where NULL)
node_zone           int32 index of the nearest zone centroid for every node
meta                0-d str array holding a JSON document (provenance, counts, licence)
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import sqlite3
import struct
import sys
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT_DIR = REPO_ROOT / "experiment" / "sim" / "data"
REF_ZIP_MEMBER = "aequilibrae/reference_files/coquimbo.zip"
DB_MEMBER = "project_database.sqlite"

EARTH_RADIUS_M = 6_371_008.8  # IUGG mean Earth radius
CLASS_NAMES = ("arterial", "collector", "local")
ARTERIAL = {"motorway", "trunk", "primary"}
COLLECTOR = {"secondary", "tertiary"}
LICENCE_NOTE = (
    "Road network derived from OpenStreetMap data (c) OpenStreetMap contributors, "
    "available under the Open Database License (ODbL 1.0, "
    "https://opendatacommons.org/licenses/odbl/); taken from the Coquimbo reference "
    "project shipped with AequilibraE (https://github.com/AequilibraE/aequilibrae). "
    "See COQUIMBO_ATTRIBUTION.md."
)


# --------------------------------------------------------------------------- input


def load_database_bytes(path: Path) -> tuple[bytes, dict]:
    """Return the raw project_database.sqlite bytes plus provenance info."""
    info: dict = {"input": path.name}
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as whl:
            meta_names = [n for n in whl.namelist() if n.endswith(".dist-info/METADATA")]
            if meta_names:
                for line in whl.read(meta_names[0]).decode("utf-8").splitlines():
                    if line.startswith("Version:"):
                        info["aequilibrae_version"] = line.split(":", 1)[1].strip()
                        break
            ref_zip = whl.read(REF_ZIP_MEMBER)
        info["source_member"] = f"{REF_ZIP_MEMBER}!{DB_MEMBER}"
        with zipfile.ZipFile(io.BytesIO(ref_zip)) as zf:
            return zf.read(DB_MEMBER), info
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            info["source_member"] = DB_MEMBER
            return zf.read(DB_MEMBER), info
    return path.read_bytes(), info


# --------------------------------------------------------------------------- SpatiaLite blobs
# Layout (SpatiaLite "BLOB-Geometry"): 0x00 | endian(0x01 LE / 0x00 BE) | srid int32 |
# MBR 4 x float64 | 0x7C | class int32 | payload | 0xFE.  Collections prefix every element
# with 0x69 followed by its own class int32.


def _header(blob: bytes) -> tuple[str, int, int]:
    if len(blob) < 44 or blob[0] != 0x00 or blob[38] != 0x7C or blob[-1] != 0xFE:
        raise ValueError("not a SpatiaLite geometry blob")
    if blob[1] not in (0, 1):
        raise ValueError(f"bad endianness byte {blob[1]:#x}")
    e = "<" if blob[1] == 1 else ">"
    srid = struct.unpack_from(e + "i", blob, 2)[0]
    cls = struct.unpack_from(e + "i", blob, 39)[0]
    return e, srid, cls


def parse_point(blob: bytes) -> tuple[float, float, int]:
    e, srid, cls = _header(blob)
    if cls != 1 or len(blob) != 60:
        raise ValueError(f"expected XY POINT (class 1, 60 bytes), got class {cls}, {len(blob)} bytes")
    x, y = struct.unpack_from(e + "dd", blob, 43)
    minx, miny, maxx, maxy = struct.unpack_from(e + "dddd", blob, 6)
    if (minx, miny, maxx, maxy) != (x, y, x, y):
        raise ValueError("POINT MBR does not match its coordinates")
    return x, y, srid


def parse_linestring(blob: bytes) -> np.ndarray:
    e, _, cls = _header(blob)
    if cls != 2:
        raise ValueError(f"expected XY LINESTRING (class 2), got {cls}")
    (n,) = struct.unpack_from(e + "i", blob, 43)
    if len(blob) != 47 + 16 * n + 1:
        raise ValueError("LINESTRING length mismatch")
    return np.frombuffer(blob, dtype=e + "f8", count=2 * n, offset=47).reshape(n, 2)


def parse_polygon_vertices(blob: bytes) -> np.ndarray:
    """All vertices of an XY POLYGON (3) or MULTIPOLYGON (6), closing vertex of each ring excluded."""
    e, _, cls = _header(blob)
    off = 43

    def polygon(off: int) -> tuple[list[np.ndarray], int]:
        (n_rings,) = struct.unpack_from(e + "i", blob, off)
        off += 4
        rings = []
        for _ in range(n_rings):
            (n_pts,) = struct.unpack_from(e + "i", blob, off)
            off += 4
            pts = np.frombuffer(blob, dtype=e + "f8", count=2 * n_pts, offset=off).reshape(n_pts, 2)
            off += 16 * n_pts
            rings.append(pts[:-1] if n_pts > 1 and np.array_equal(pts[0], pts[-1]) else pts)
        return rings, off

    rings: list[np.ndarray] = []
    if cls == 3:
        rings, off = polygon(off)
    elif cls == 6:
        (n_polys,) = struct.unpack_from(e + "i", blob, off)
        off += 4
        for _ in range(n_polys):
            if blob[off] != 0x69:
                raise ValueError("missing collection entity marker 0x69")
            (sub,) = struct.unpack_from(e + "i", blob, off + 1)
            if sub != 3:
                raise ValueError(f"MULTIPOLYGON element of class {sub}")
            r, off = polygon(off + 5)
            rings.extend(r)
    else:
        raise ValueError(f"expected XY (MULTI)POLYGON, got class {cls}")
    if off != len(blob) - 1:
        raise ValueError("polygon blob length mismatch")
    return np.concatenate(rings)


# --------------------------------------------------------------------------- geometry helpers


def haversine_m(lon1, lat1, lon2, lat2):
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi, dlmb = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(a))


def project(lon, lat, lon0: float, lat0: float) -> tuple[np.ndarray, np.ndarray]:
    k = math.pi / 180.0 * EARTH_RADIUS_M
    x = (np.asarray(lon, dtype=np.float64) - lon0) * k * math.cos(math.radians(lat0))
    y = (np.asarray(lat, dtype=np.float64) - lat0) * k
    return x, y


def road_class(link_type: str | None) -> int:
    base = (link_type or "").removesuffix("_link")
    if base in ARTERIAL:
        return 0
    if base in COLLECTOR:
        return 1
    return 2  # residential, unclassified, living_street, service, anything else


def speed_or_nan(v) -> float:
    return float(v) if v is not None and float(v) > 0 else math.nan


# --------------------------------------------------------------------------- conversion


def convert(db_path: str, provenance: dict) -> tuple[dict[str, np.ndarray], dict]:
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    about = dict(con.execute("SELECT infoname, infovalue FROM about").fetchall())
    quirks: list[str] = []

    # ---- nodes
    node_lonlat: dict[int, tuple[float, float]] = {}
    centroid_ids: set[int] = set()
    srids = Counter()
    for node_id, is_centroid, geom in con.execute("SELECT node_id, is_centroid, geometry FROM nodes"):
        x, y, srid = parse_point(geom)
        srids[srid] += 1
        node_lonlat[int(node_id)] = (x, y)
        if is_centroid:
            centroid_ids.add(int(node_id))
    if set(srids) != {4326}:
        raise ValueError(f"expected WGS84 (SRID 4326) geometries, got {dict(srids)}")

    # ---- links -> directed candidate edges
    rows = con.execute(
        "SELECT link_id, a_node, b_node, direction, distance, modes, link_type, speed_ab, speed_ba, geometry "
        "FROM links ORDER BY link_id"
    ).fetchall()
    dir_counts = Counter(r[3] for r in rows)
    unknown_dirs = set(dir_counts) - {-1, 0, 1}
    if unknown_dirs:
        raise ValueError(f"unexpected link direction values {unknown_dirs}")
    n_links = len(rows)
    n_not_car = sum("c" not in (r[5] or "") for r in rows)
    n_connector = sum(r[6] == "centroid_connector" for r in rows)

    src_ids, dst_ids, lens, classes, speeds, link_ids = [], [], [], [], [], []
    ratios = []
    n_self_loops = 0
    speed_ba_on_oneway = 0
    for link_id, a, b, direction, dist, modes, ltype, s_ab, s_ba, geom in rows:
        if "c" not in (modes or "") or ltype == "centroid_connector":
            continue
        if a == b:
            n_self_loops += 1
            continue
        # unit check: `distance` against the great-circle length of the link's geometry
        pts = parse_linestring(geom)
        geo_len = float(haversine_m(pts[:-1, 0], pts[:-1, 1], pts[1:, 0], pts[1:, 1]).sum())
        if geo_len > 1.0:
            ratios.append(float(dist) / geo_len)
        if direction == 1 and s_ba is not None and float(s_ba) > 0:
            speed_ba_on_oneway += 1
        cls = road_class(ltype)
        directed = []
        if direction in (0, 1):
            directed.append((a, b, s_ab))
        if direction in (0, -1):
            directed.append((b, a, s_ba))
        for u, v, spd in directed:
            src_ids.append(u)
            dst_ids.append(v)
            lens.append(dist)
            classes.append(cls)
            speeds.append(speed_or_nan(spd))
            link_ids.append(link_id)

    ratios = np.asarray(ratios)
    med_ratio = float(np.median(ratios))
    if not 0.98 < med_ratio < 1.02:
        raise ValueError(f"link distance does not look like metres (median distance/geodesic = {med_ratio:.3f})")

    src_ids = np.asarray(src_ids, dtype=np.int64)
    dst_ids = np.asarray(dst_ids, dtype=np.int64)
    lens = np.asarray(lens, dtype=np.float64)
    classes = np.asarray(classes, dtype=np.int8)
    speeds = np.asarray(speeds, dtype=np.float64)
    link_ids = np.asarray(link_ids, dtype=np.int64)
    missing = set(np.unique(np.concatenate([src_ids, dst_ids])).tolist()) - set(node_lonlat)
    if missing:
        raise ValueError(f"{len(missing)} link endpoints missing from nodes table")

    # ---- parallel edges: keep the shortest (ties -> lowest link_id)
    node_ids_all = np.unique(np.concatenate([src_ids, dst_ids]))
    s = np.searchsorted(node_ids_all, src_ids)
    d = np.searchsorted(node_ids_all, dst_ids)
    order = np.lexsort((link_ids, lens, d, s))
    s, d, lens, classes, speeds, link_ids = (a[order] for a in (s, d, lens, classes, speeds, link_ids))
    first = np.ones(len(s), dtype=bool)
    first[1:] = (s[1:] != s[:-1]) | (d[1:] != d[:-1])
    n_parallel = int((~first).sum())
    s, d, lens, classes, speeds, link_ids = (a[first] for a in (s, d, lens, classes, speeds, link_ids))
    n_directed_before_scc = len(s)

    # ---- largest strongly connected component
    n_all = len(node_ids_all)
    adj = coo_matrix((np.ones(len(s)), (s, d)), shape=(n_all, n_all)).tocsr()
    n_comp, labels = connected_components(adj, directed=True, connection="strong")
    big = np.bincount(labels).argmax()
    keep_node = labels == big
    keep_edge = keep_node[s] & keep_node[d]
    new_index = np.full(n_all, -1, dtype=np.int64)
    new_index[keep_node] = np.arange(int(keep_node.sum()))
    s, d = new_index[s[keep_edge]], new_index[d[keep_edge]]
    lens, classes, speeds = lens[keep_edge], classes[keep_edge], speeds[keep_edge]
    _, first_of_link = np.unique(link_ids[keep_edge], return_index=True)
    street_km = float(lens[first_of_link].sum() / 1000.0)  # each kept OSM link counted once
    order = np.lexsort((d, s))
    s, d, lens, classes, speeds = s[order], d[order], lens[order], classes[order], speeds[order]
    kept_ids = node_ids_all[keep_node]

    lonlat = np.array([node_lonlat[int(i)] for i in kept_ids], dtype=np.float64)
    lon0, lat0 = float(lonlat[:, 0].mean()), float(lonlat[:, 1].mean())
    node_x, node_y = project(lonlat[:, 0], lonlat[:, 1], lon0, lat0)

    # ---- zones
    zrows = con.execute("SELECT zone_id, population, employment, geometry FROM zones ORDER BY zone_id").fetchall()
    zone_ids = np.array([r[0] for r in zrows], dtype=np.int64)
    zone_pop = np.array([r[1] if r[1] is not None else 0 for r in zrows], dtype=np.float64)
    zone_emp = np.array([r[2] if r[2] is not None else 0 for r in zrows], dtype=np.float64)
    n_emp_null = sum(r[2] is None for r in zrows)
    poly_mean = np.array([parse_polygon_vertices(r[3]).mean(axis=0) for r in zrows])
    zone_lonlat = poly_mean.copy()
    n_from_centroid = 0
    for i, zid in enumerate(zone_ids.tolist()):
        if zid in centroid_ids:
            zone_lonlat[i] = node_lonlat[zid]
            n_from_centroid += 1
    centroid_vs_poly = haversine_m(zone_lonlat[:, 0], zone_lonlat[:, 1], poly_mean[:, 0], poly_mean[:, 1])
    zone_x, zone_y = project(zone_lonlat[:, 0], zone_lonlat[:, 1], lon0, lat0)
    _, node_zone = cKDTree(np.column_stack([zone_x, zone_y])).query(np.column_stack([node_x, node_y]))
    node_zone = node_zone.astype(np.int32)
    con.close()

    # ---- summary / meta
    total_km = float(lens.sum() / 1000.0)
    km_by_class = {CLASS_NAMES[c]: round(float(lens[classes == c].sum() / 1000.0), 1) for c in range(3)}
    edges_by_class = {CLASS_NAMES[c]: int((classes == c).sum()) for c in range(3)}
    missing_speed = float(np.isnan(speeds).mean())
    link_types = Counter(r[6] for r in rows)

    if dir_counts.get(-1, 0) == 0:
        quirks.append("no links with direction = -1; only 0 (two-way) and 1 (a->b one-way) occur")
    if n_emp_null == len(zrows):
        quirks.append("employment is NULL for every zone (zone_emp is all zeros)")
    if speed_ba_on_oneway:
        quirks.append(f"{speed_ba_on_oneway} one-way (direction=1) car links carry a speed_ba value (ignored)")
    if not any(t and t.endswith("_link") for t in link_types):
        quirks.append("no *_link types: AequilibraE's OSM import already folded ramps into their parent class")
    quirks.append(f"{missing_speed:.1%} of kept directed edges have no OSM speed (NaN)")
    quirks.append(f"{n_self_loops} self-loop car links dropped")
    if any(p is not None and float(p) != int(p) for p in (r[1] for r in zrows)):
        quirks.append("zone population is stored as non-integer reals")
    empty = np.flatnonzero(np.bincount(node_zone, minlength=len(zone_ids)) == 0)
    if len(empty):
        quirks.append(
            f"{len(empty)} zones are nearest to no node (zone indices {empty.tolist()}, "
            f"population {zone_pop[empty].sum():.0f})"
        )

    counts = {
        "links_in_source": n_links,
        "links_kept": int(len(first_of_link)),
        "links_without_car_mode": n_not_car,
        "centroid_connectors": n_connector,
        "self_loops_dropped": n_self_loops,
        "parallel_edges_dropped": n_parallel,
        "directed_edges_before_scc": n_directed_before_scc,
        "strong_components": int(n_comp),
        "nodes_before_scc": int(n_all),
        "nodes": int(len(kept_ids)),
        "edges": int(len(s)),
        "zones": int(len(zone_ids)),
        "zones_from_centroid_node": n_from_centroid,
        "edges_by_class": edges_by_class,
    }
    meta = {
        "source": "AequilibraE reference project 'coquimbo' (Coquimbo, Chile), OpenStreetMap-derived",
        "source_member": provenance.get("source_member", DB_MEMBER),
        "input": provenance.get("input"),
        "aequilibrae_version": provenance.get("aequilibrae_version"),
        "project_db_aequilibrae_version": about.get("aequilibrae_version"),
        "sqlite_sha256": provenance.get("sqlite_sha256"),
        "projection": {
            "type": "equirectangular",
            "lon0": lon0,
            "lat0": lat0,
            "earth_radius_m": EARTH_RADIUS_M,
            "axes": "x east, y north, metres",
        },
        "edge_class_names": list(CLASS_NAMES),
        "direction_values": {str(k): v for k, v in sorted(dir_counts.items())},
        "distance_over_geodesic_median": round(med_ratio, 5),
        "counts": counts,
        "total_km": round(total_km, 1),
        "total_km_note": "sum of directed edge lengths (two-way streets counted twice)",
        "street_km": round(street_km, 1),
        "km_by_class": km_by_class,
        "missing_speed_share": round(missing_speed, 4),
        "zone_population_total": float(zone_pop.sum()),
        "zone_centroid_vs_polygon_mean_m": {
            "median": round(float(np.median(centroid_vs_poly)), 1),
            "max": round(float(centroid_vs_poly.max()), 1),
        },
        "quirks": quirks,
        "licence": LICENCE_NOTE,
        "generated_by": "scripts/convert_coquimbo.py",
    }
    arrays = {
        "node_x": node_x.astype(np.float64),
        "node_y": node_y.astype(np.float64),
        "edge_src": s.astype(np.int32),
        "edge_dst": d.astype(np.int32),
        "edge_len_m": lens.astype(np.float64),
        "edge_class": classes.astype(np.int8),
        "edge_speed_kmh": speeds.astype(np.float64),
        "zone_x": zone_x.astype(np.float64),
        "zone_y": zone_y.astype(np.float64),
        "zone_pop": zone_pop,
        "zone_emp": zone_emp,
        "node_zone": node_zone,
        "meta": np.array(json.dumps(meta, sort_keys=True)),
    }
    return arrays, meta


# --------------------------------------------------------------------------- attribution


def attribution_markdown(meta: dict) -> str:
    c = meta["counts"]
    version = meta.get("aequilibrae_version") or "unknown"
    return f"""# Coquimbo road network — data attribution

`coquimbo.npz` in this directory contains the road network of **Coquimbo, Chile**. It is
derived from **OpenStreetMap** data, © OpenStreetMap contributors, available under the
**Open Database License (ODbL 1.0)**, <https://opendatacommons.org/licenses/odbl/>
(see also <https://www.openstreetmap.org/copyright>).

The OSM extract was taken, already converted into a routable network with 133 traffic zones
and zone populations, from the `coquimbo` reference project shipped with the **AequilibraE**
Python package (version {version}; database `project_database.sqlite` inside
`aequilibrae/reference_files/coquimbo.zip`).

## Citing AequilibraE

The AequilibraE wheel does not ship a formal citation (no CITATION file or "how to cite"
section in its README), but its licence (MIT with an added clause) requires that the
software be referenced in the documentation of work developed with it. Please reference it as:

> AequilibraE — a Python package for transportation modeling. Pedro Camargo and the
> AequilibraE contributors. Version {version}. <https://www.aequilibrae.com>,
> <https://github.com/AequilibraE/aequilibrae>.

## What was changed

`scripts/convert_coquimbo.py` reads the database directly (no AequilibraE install) and:

- keeps links open to cars (`modes` contains `c`), drops centroid connectors and self-loops;
- expands two-way links into two directed edges, keeps the shortest of parallel edges;
- keeps only the largest strongly connected component;
- projects WGS84 coordinates to local metres (equirectangular around the mean lat/lon);
- folds OSM highway types into three classes (arterial / collector / local).

Result: {c['nodes']:,} nodes, {c['edges']:,} directed edges ({meta['total_km']:,.1f} km of
directed edge length; {meta['street_km']:,.1f} km of street), {c['zones']} zones. The file is a
derivative database of OpenStreetMap and therefore also subject to the ODbL 1.0; keep this
notice with it.

## Regenerating

```bash
pip download --no-deps aequilibrae==1.7.2 -d /tmp/aeq   # only downloads the wheel
python scripts/convert_coquimbo.py /tmp/aeq/aequilibrae-1.7.2-*.whl
```

The argument may also be `coquimbo.zip` or an extracted `project_database.sqlite`; needs only
numpy and scipy. Provenance (source hash, projection origin, counts) is stored as JSON in the
npz's `meta` entry.
"""


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", type=Path, help="aequilibrae wheel (.whl), coquimbo.zip, or project_database.sqlite")
    ap.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="output directory (default: %(default)s)")
    args = ap.parse_args(argv)

    db_bytes, provenance = load_database_bytes(args.source)
    provenance["sqlite_sha256"] = hashlib.sha256(db_bytes).hexdigest()
    with tempfile.TemporaryDirectory() as tmp:
        db_path = os.path.join(tmp, DB_MEMBER)
        with open(db_path, "wb") as fh:
            fh.write(db_bytes)
        arrays, meta = convert(db_path, provenance)

    args.out_dir.mkdir(parents=True, exist_ok=True)
    npz_path = args.out_dir / "coquimbo.npz"
    np.savez_compressed(npz_path, **arrays)
    (args.out_dir / "COQUIMBO_ATTRIBUTION.md").write_text(attribution_markdown(meta), encoding="utf-8")

    c = meta["counts"]
    print(f"wrote {npz_path} ({npz_path.stat().st_size / 1e6:.2f} MB)")
    print(
        f"nodes {c['nodes']:,}  edges {c['edges']:,}  zones {c['zones']}  "
        f"total {meta['total_km']:,.1f} km directed ({meta['street_km']:,.1f} km of street)"
    )
    for name in CLASS_NAMES:
        print(f"  {name:9s} {meta['km_by_class'][name]:9,.1f} km  {c['edges_by_class'][name]:6,} edges")
    print(
        f"source links {c['links_in_source']:,}; directions {meta['direction_values']}; "
        f"strong components {c['strong_components']} (kept {c['nodes']:,}/{c['nodes_before_scc']:,} nodes)"
    )
    for q in meta["quirks"]:
        print(f"  note: {q}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
