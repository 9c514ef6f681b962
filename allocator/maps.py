"""Territory polygons (dissolved units) and the static territory map."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402
from shapely.geometry import MultiPoint, Point  # noqa: E402

PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac"]


def territory_frame(plan) -> gpd.GeoDataFrame:
    """One row per territory: dissolved unit polygons (or the hull of unit points)."""
    scenario = plan.scenario
    terr = plan.territories
    if scenario.geometry is not None:
        units = gpd.GeoDataFrame({"territory_id": plan.units["territory_id"].to_numpy()},
                                 geometry=scenario.geometry.values, crs=scenario.geometry.crs)
        dissolved = units.dissolve(by="territory_id").reset_index()
    else:
        pts = scenario.coordinates.points
        shapes = []
        for tid in terr["territory_id"]:
            members = np.flatnonzero(plan.units["territory_id"].to_numpy() == tid)
            shapes.append(MultiPoint([Point(*pts[i]) for i in members]).convex_hull)
        crs = None if scenario.coordinates.planar else "EPSG:4326"
        dissolved = gpd.GeoDataFrame({"territory_id": terr["territory_id"]}, geometry=shapes,
                                     crs=crs)
    keep = ["territory_id", "rep_ids", "n_reps", "n_units", "workload", "potential",
            "expected_sales", "quota", "workload_per_rep_index", "site_unit"]
    return dissolved.merge(terr[keep], on="territory_id")


def territory_colours(plan) -> dict[str, str]:
    """Adjacent territories get different colours (greedy graph colouring)."""
    tid = plan.units["territory_id"].to_numpy()
    graph = nx.Graph()
    graph.add_nodes_from(plan.territories["territory_id"])
    edges = plan.scenario.edges
    cross = tid[edges[:, 0]] != tid[edges[:, 1]]
    graph.add_edges_from(zip(tid[edges[cross, 0]], tid[edges[cross, 1]], strict=True))
    colour = nx.greedy_color(graph, strategy="largest_first")
    return {t: PALETTE[c % len(PALETTE)] for t, c in colour.items()}


def write_territory_polygons(plan, path: Path) -> None:
    """Dissolved territories; planar scenarios have no CRS, which the file says explicitly."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*crs.*not provided.*")
        territory_frame(plan).to_file(path, layer="territories", driver="GPKG")


def write_map(plan, path: Path, title: str | None = None) -> None:
    """Territories coloured, rep bases marked (size by number of reps)."""
    frame = territory_frame(plan)
    colours = territory_colours(plan)
    fig, ax = plt.subplots(figsize=(12, 7.5), dpi=110)
    frame.plot(ax=ax, color=[colours[t] for t in frame["territory_id"]], edgecolor="white",
               linewidth=0.4)
    pts = plan.scenario.coordinates.points
    position = {u: i for i, u in enumerate(plan.scenario.units["unit_id"])}
    sites = np.array([position[u] for u in plan.territories["site_unit"]])
    ax.scatter(pts[sites, 0], pts[sites, 1], s=12 + 14 * plan.territories["n_reps"].to_numpy(),
               c="black", marker="^", zorder=3, label="rep base (size: reps)")
    kpis = plan.kpis
    ax.set_title(title or (f"{plan.scenario.name}: {kpis['headcount']} reps in "
                           f"{kpis['territories']} territories; workload per rep "
                           f"{kpis['workload_index_min']:.2f}-{kpis['workload_index_max']:.2f} x mean"))
    ax.legend(loc="lower left")
    ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
