"""Distances, nearest-site look-ups and adjacency of units.

Coordinates are either longitude/latitude in degrees (distances are great-circle kilometres) or
planar (distances are Euclidean, in the coordinate unit).
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True)
class Coordinates:
    """Unit positions and the metric used between them."""

    points: np.ndarray  # (n, 2): lon, lat in degrees, or planar x, y
    planar: bool

    def embedded(self) -> np.ndarray:
        """Points in a space where Euclidean order equals distance order (3-D sphere or plane)."""
        if self.planar:
            return self.points
        lon, lat = np.radians(self.points[:, 0]), np.radians(self.points[:, 1])
        return np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])

    def distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Distance between units ``a[k]`` and ``b[k]`` (broadcasting index arrays)."""
        pa, pb = self.points[a], self.points[b]
        if self.planar:
            return np.hypot(pa[..., 0] - pb[..., 0], pa[..., 1] - pb[..., 1])
        lon1, lat1 = np.radians(pa[..., 0]), np.radians(pa[..., 1])
        lon2, lat2 = np.radians(pb[..., 0]), np.radians(pb[..., 1])
        h = (
            np.sin((lat2 - lat1) / 2) ** 2
            + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
        )
        return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))

    def nearest(self, sources: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
        """For every source unit, the positions (into ``targets``) of its ``k`` nearest targets."""
        k = min(k, len(targets))
        tree = cKDTree(self.embedded()[targets])
        _, idx = tree.query(self.embedded()[sources], k=k)
        return np.asarray(idx).reshape(len(sources), k)


def rook_adjacency(geometry: gpd.GeoSeries) -> np.ndarray:
    """Pairs ``(i, j)``, ``i < j``, of units whose borders share a line of positive length.

    Units that meet at a single point are not neighbours (rook, not queen, adjacency).
    """
    frame = gpd.GeoDataFrame({"pos": np.arange(len(geometry))}, geometry=geometry.values)
    left, right = frame.sindex.query(frame.geometry, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    boundaries = shapely.boundary(frame.geometry.values)
    shared = shapely.intersection(boundaries[left], boundaries[right])
    length = shapely.length(shared)
    scale = np.sqrt(np.median(shapely.area(frame.geometry.values)))
    line = length > 1e-9 * scale
    return np.column_stack([left[line], right[line]]).astype(np.int64)


def join_islands(
    edges: np.ndarray, coordinates: Coordinates, n: int
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Connect every component of the adjacency graph to the main one through its nearest unit.

    Returns the edges with the added links, and the added links ``(unit in the smaller component,
    nearest unit outside it)``. Components are joined one at a time, smallest first, so that
    island chains end up linked to the mainland.
    """
    added: list[tuple[int, int]] = []
    edges = edges.copy()
    while True:
        graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
        count, labels = connected_components(graph, directed=False)
        if count <= 1:
            return edges, added
        sizes = np.bincount(labels)
        smallest = int(np.argmin(sizes))
        inside = np.flatnonzero(labels == smallest)
        outside = np.flatnonzero(labels != smallest)
        nearest = coordinates.nearest(inside, outside, 1)[:, 0]
        gaps = coordinates.distance(inside, outside[nearest])
        best = int(np.argmin(gaps))
        link = (int(inside[best]), int(outside[nearest[best]]))
        added.append(link)
        edges = np.vstack([edges, [sorted(link)]])


def neighbours(edges: np.ndarray, n: int) -> list[np.ndarray]:
    """Adjacency lists from an edge array."""
    both = np.vstack([edges, edges[:, ::-1]])
    order = np.argsort(both[:, 0], kind="stable")
    both = both[order]
    starts = np.searchsorted(both[:, 0], np.arange(n + 1))
    return [both[starts[i] : starts[i + 1], 1] for i in range(n)]
