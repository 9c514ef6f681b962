"""The run report: ``reports/<scenario>/<run-id>/`` with report.html, map.html, map.png, plan.xlsx.

Everything is built from the run folder (:func:`allocator.runs.read_run`) and the scenario it
solved (for the unit shapes and the plan year), so a report can be made long after the solve.
The HTML pages carry plotly.js inline and request nothing: they work offline, from a file.
"""

from __future__ import annotations

import html
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import geopandas as gpd
import numpy as np
import pandas as pd

from allocator.exceptions import InputError
from allocator.runs import RunRecord, read_run, read_run_table

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from allocator.scenario import Scenario

PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac"]
MONTHS = [f"{m:02d}" for m in range(1, 13)]
MONTH_NAMES = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
# Interactive map: shapes are simplified to this share of the map's diagonal (about 2.5 km on
# the contiguous US) so that the page stays a few megabytes; map.png uses the stored shapes.
MAP_SIMPLIFY_SHARE = 1 / 2000

REPORT_FILES = ("report.html", "map.html", "map.png", "plan.xlsx")

# plotly's geo maps draw base layers (land, coastlines, ...) from a topojson file fetched from the
# web unless one is registered in the page; the maps hide those layers, so an empty one is given.
GEO_BASE = "world_110m"
EMPTY_GEO_ASSETS = {GEO_BASE: {
    "type": "Topology", "arcs": [],
    "objects": {layer: {"type": "GeometryCollection", "geometries": []}
                for layer in ("land", "ocean", "lakes", "rivers", "countries", "subunits",
                              "coastlines")}}}


def report_folder(run: RunRecord, reports_dir: str | Path = "reports") -> Path:
    """``<reports_dir>/<scenario>/<run-id>``: the folder every report of a run goes to."""
    return Path(reports_dir) / run.scenario_name / run.run_id


# --- writing files safely ---------------------------------------------------------------------

def publish(files: dict[str, Callable[[Path], None]], folder: Path) -> dict[str, Path]:
    """Write each file into a temporary sibling folder, then move them into ``folder``.

    A failure leaves no partial file behind: nothing is moved until every file is written, and
    each move is an atomic rename (earlier files of the same name are replaced whole).
    """
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".tmp-{folder.name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        for name, writer in files.items():
            writer(staging / name)
        out = {}
        for name in files:
            os.replace(staging / name, folder / name)
            out[name] = folder / name
        return out
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --- formatting ---------------------------------------------------------------------------------

def money(value: float) -> str:
    return f"{value:,.0f}"


def pct(value: float, digits: int = 1) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:.{digits}%}"


def html_table(frame: pd.DataFrame, formats: dict[str, Callable[[Any], str]] | None = None,
               row_class: Callable[[pd.Series], str] | None = None, table_id: str | None = None
               ) -> str:
    """A plain HTML table; text columns align left, numbers right (by the stylesheet)."""
    formats = formats or {}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    # values are taken column by column: a row of mixed columns would turn integers into floats
    columns = [frame[c].to_numpy(dtype=object) for c in frame.columns]
    for k, (_, row) in enumerate(frame.iterrows()):
        cells = []
        for column, values in zip(frame.columns, columns, strict=True):
            value = values[k]
            if column in formats:
                text = formats[column](value)
            elif isinstance(value, (float, np.floating)):
                text = "" if not np.isfinite(value) else f"{value:,.2f}"
            else:
                text = str(value)
            numeric = isinstance(value, (int, float, np.integer, np.floating))
            css = "" if numeric else ' class="text"'
            cells.append(f"<td{css}>{html.escape(text)}</td>")
        tr_css = f' class="{row_class(row)}"' if row_class else ""
        rows.append(f"<tr{tr_css}>{''.join(cells)}</tr>")
    ident = f' id="{table_id}"' if table_id else ""
    return (f'<table class="data"{ident}><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def render(template: str, **context: Any) -> str:
    """Render a page template of ``allocator/templates`` with plotly.js inlined."""
    import jinja2
    from plotly.offline import get_plotlyjs

    env = jinja2.Environment(loader=jinja2.PackageLoader("allocator", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    return env.get_template(template).render(plotlyjs=get_plotlyjs(),
                                             geo_assets=json.dumps(EMPTY_GEO_ASSETS), **context)


def figure_div(figure: go.Figure, div_id: str, height: int = 520) -> str:
    """The figure as a ``<div>`` and its script; plotly.js itself is inlined once per page."""
    figure.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10))
    return figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                          config={"displaylogo": False, "responsive": True})


# --- a re-optimised run against its parent ----------------------------------------------------

# Colours of the before/after map: the parent's borders and the moved units must stand out
# from the territory palette and from the current (solid, dark) borders.
PARENT_BORDER = "#6a3d9a"
MOVED = "#e6007e"


@dataclass(frozen=True)
class Changes:
    """What a re-optimised run changed against its parent, read from the two run folders.

    ``moves`` is the run's ``moves.csv`` (one row per unit that changed owner), ``quota_reset``
    its ``quota_reset.csv`` (the remaining-month quotas by rep), ``tradeoff`` its
    ``tradeoff.csv`` when a trade-off sweep ran.
    """

    parent: RunRecord
    moves: pd.DataFrame
    quota_reset: pd.DataFrame
    tradeoff: pd.DataFrame | None
    disruption: dict[str, Any]
    quotas: dict[str, Any]
    people: dict[str, Any]


MOVE_COLUMNS = ["unit_id", "from_territory", "from_rep", "to_territory", "to_rep",
                "last_year_sales", "forced"]
QUOTA_RESET_COLUMNS = ["rep_id", "territory_id", "quota_remaining", "expected_sales_remaining"]
TRADEOFF_COLUMNS = ["point", "cap", "units_moved", "value_moved", "objective"]


def read_changes(run: RunRecord) -> Changes | None:
    """The changes of a re-optimised run (``"kind": "reoptimized"``), or None for a plain run.

    The parent is the folder named by ``parent_run``; where the run folders were moved
    together, the sibling folder of the recorded ``parent_run_id`` is used instead.
    """
    result = run.result
    if result.get("kind") != "reoptimized":
        return None
    where = str(run.path / "result.json")
    recorded = result.get("parent_run")
    if not recorded:
        raise InputError("a re-optimised run must name its parent run", file=where,
                         column="parent_run")
    parent_path = Path(str(recorded))
    if not parent_path.is_dir():
        sibling = run.path.parent / str(result.get("parent_run_id", ""))
        if not (result.get("parent_run_id") and sibling.is_dir()):
            raise InputError("the parent run folder was not found (nor a sibling folder of its "
                             "run id)", file=where, column="parent_run", value=recorded)
        parent_path = sibling
    parent = read_run(parent_path)
    ours = run.assignment["unit_id"].astype(str).tolist()
    if parent.assignment["unit_id"].astype(str).tolist() != ours:
        raise InputError("the parent run's units differ from this run's units",
                         file=str(parent.path / "assignment.csv"), column="unit_id")
    moves = _read_change_table(run, "moves.csv", MOVE_COLUMNS)
    moves["forced"] = moves["forced"].astype(str).str.lower().isin(["true", "1"])
    unknown = sorted(set(moves["unit_id"]) - set(ours))
    if unknown:
        raise InputError("not a unit of the run", file=str(run.path / "moves.csv"),
                         column="unit_id", value=unknown[0])
    quota_reset = _read_change_table(run, "quota_reset.csv", QUOTA_RESET_COLUMNS)
    tradeoff = None
    if (run.path / "tradeoff.csv").is_file():
        tradeoff = _read_change_table(run, "tradeoff.csv", TRADEOFF_COLUMNS)
    return Changes(parent=parent, moves=moves, quota_reset=quota_reset, tradeoff=tradeoff,
                   disruption=dict(result.get("disruption") or {}),
                   quotas=dict(result.get("quotas") or {}),
                   people=dict(result.get("people_changes") or {}))


def _read_change_table(run: RunRecord, name: str, columns: list[str]) -> pd.DataFrame:
    file = run.path / name
    if not file.is_file():
        raise InputError("a re-optimised run folder must hold this file", file=str(file))
    ids = {c: str for c in ("unit_id", "name", "from_territory", "from_rep", "to_territory",
                            "to_rep", "rep_id", "territory_id", "kind")}
    return read_run_table(file, columns, ids)


def _move_hover(changes: Changes, currency: str) -> tuple[np.ndarray, str]:
    """Hover of a moved unit: where it came from and where it went, with its sales."""
    moves = changes.moves
    reason = np.where(moves["forced"], "had to move: its rep left, or it is a new rep's base",
                      "moved to restore balance or for a better plan")
    ytd = moves["ytd_sales"] if "ytd_sales" in moves else pd.Series(np.nan, index=moves.index)
    custom = np.column_stack([
        moves["unit_id"], moves.get("name", moves["unit_id"]), moves["from_territory"],
        moves["from_rep"], moves["to_territory"], moves["to_rep"],
        moves["last_year_sales"].map(money),
        [money(v) if np.isfinite(v) else "n/a" for v in ytd.astype(float)], reason])
    template = ("<b>%{customdata[1]}</b> (%{customdata[0]}): moved<br>from territory "
                "%{customdata[2]}, rep %{customdata[3]}<br>to territory %{customdata[4]}, rep "
                "%{customdata[5]}<br>last year's sales %{customdata[6]} " + currency +
                ", sold this year %{customdata[7]}<br>%{customdata[8]}<extra>moved unit</extra>")
    return custom, template


def _with_change_line(custom: np.ndarray, template: str, unit_ids: pd.Series,
                      changes: Changes) -> tuple[np.ndarray, str]:
    line = {r.unit_id: f"moved from territory {r.from_territory} (rep {r.from_rep}) to "
                       f"{r.to_territory} (rep {r.to_rep})" for r in changes.moves.itertuples()}
    column = [line.get(u, f"unchanged since run {changes.parent.run_id}") for u in unit_ids]
    k = custom.shape[1]
    template = template.replace("<extra></extra>",
                                f"<br><b>%{{customdata[{k}]}}</b><extra></extra>")
    return np.column_stack([custom, column]), template


# --- the territory map ------------------------------------------------------------------------

def territory_colours(run: RunRecord, scenario: Scenario) -> dict[str, str]:
    """Adjacent territories get different colours (greedy colouring of the territory graph)."""
    import networkx as nx

    territory = run.assignment["territory_id"].to_numpy()
    graph = nx.Graph()
    graph.add_nodes_from(run.territories["territory_id"])
    edges = scenario.edges
    if len(edges):
        cross = territory[edges[:, 0]] != territory[edges[:, 1]]
        graph.add_edges_from(zip(territory[edges[cross, 0]], territory[edges[cross, 1]],
                                 strict=True))
    colour = nx.greedy_color(graph, strategy="largest_first")
    return {t: PALETTE[c % len(PALETTE)] for t, c in colour.items()}


def _check_units_match(run: RunRecord, scenario: Scenario) -> None:
    ours = run.assignment["unit_id"].astype(str).tolist()
    theirs = scenario.units["unit_id"].astype(str).tolist()
    if ours != theirs:
        raise InputError("the run's units differ from its scenario's units (the scenario file "
                         "changed since the solve)", file=str(run.path / "assignment.csv"),
                         column="unit_id")


def _unit_hover(run: RunRecord, currency: str) -> tuple[np.ndarray, str]:
    units = run.assignment
    terr = run.territories.set_index("territory_id")
    reps = terr.loc[units["territory_id"], "rep_ids"].str.replace(";", ", ").to_numpy()
    index = terr.loc[units["territory_id"], "workload_per_rep_index"].to_numpy(float)
    custom = np.column_stack([
        units["unit_id"], units.get("name", units["unit_id"]), units["territory_id"], reps,
        units["potential"].map(money), units["workload"].map("{:,.1f}".format),
        units["effort_hours"].map("{:,.1f}".format), units["expected_sales"].map(money),
        [f"{v:.2f}" for v in index]])
    template = ("<b>%{customdata[1]}</b> (%{customdata[0]})<br>territory %{customdata[2]}, "
                "rep %{customdata[3]}<br>potential %{customdata[4]} " + currency +
                "<br>workload %{customdata[5]} h, planned effort %{customdata[6]} h<br>expected "
                "sales %{customdata[7]} " + currency + "<br>territory workload per rep "
                "%{customdata[8]} x mean<extra></extra>")
    return custom, template


def _territory_hover(run: RunRecord, currency: str) -> list[str]:
    return [f"<b>{t.territory_id}</b><br>reps {t.rep_ids.replace(';', ', ')}<br>{t.n_units} units"
            f"<br>expected sales {money(t.expected_sales)} {currency}<br>quota {money(t.quota)} "
            f"{currency}<br>workload per rep {t.workload_per_rep_index:.2f} x mean"
            for t in run.territories.itertuples()]


def _simplified(shapes: gpd.GeoSeries) -> gpd.GeoSeries:
    """Shapes simplified for the screen, with shared borders kept shared.

    Exterior rings are made clockwise: plotly's geo maps (d3-geo, spherical) read an
    anticlockwise ring as everything outside it, and simplification can flip a ring.
    """
    import shapely

    if shapes.crs is None or not shapes.crs.is_geographic:
        minx, miny, maxx, maxy = shapes.total_bounds
        simple = shapes.simplify_coverage(float(np.hypot(maxx - minx, maxy - miny)) *
                                          MAP_SIMPLIFY_SHARE)
    else:
        projected = shapes.to_crs(shapes.estimate_utm_crs())
        minx, miny, maxx, maxy = projected.total_bounds
        tolerance = float(np.hypot(maxx - minx, maxy - miny)) * MAP_SIMPLIFY_SHARE
        simple = projected.simplify_coverage(tolerance).to_crs(shapes.crs)
    return gpd.GeoSeries(shapely.orient_polygons(simple.values, exterior_cw=True),
                         index=simple.index, crs=simple.crs)


def _outline(shapes: gpd.GeoSeries) -> tuple[list, list]:
    """Boundary lines of shapes as coordinate lists separated by ``None`` (one trace)."""
    xs: list = []
    ys: list = []
    for line in shapes.boundary.explode(index_parts=False):
        if line is None or line.is_empty:
            continue
        coords = np.round(np.asarray(line.coords)[:, :2], 4)
        xs.extend(coords[:, 0].tolist() + [None])
        ys.extend(coords[:, 1].tolist() + [None])
    return xs, ys


def territory_map_figure(run: RunRecord, scenario: Scenario,
                         changes: Changes | None = None) -> go.Figure:
    """The interactive territory map: unit shapes coloured by territory (or unit points where
    the scenario has no shapes), territory borders, rep bases; hover shows the figures.

    For a re-optimised run (``changes``) it is the before/after map: the parent's territory
    borders drawn dashed over the new territory colours, and the moved units outlined, their
    hover naming the territory and rep they came from and went to.
    """
    import plotly.graph_objects as go

    _check_units_match(run, scenario)
    currency = scenario.settings.currency
    colours = territory_colours(run, scenario)
    units = run.assignment
    custom, hover = _unit_hover(run, currency)
    if changes is not None:  # every unit's hover says whether it moved, and from where
        custom, hover = _with_change_line(custom, hover, units["unit_id"], changes)
    points = scenario.coordinates.points
    position = {u: k for k, u in enumerate(units["unit_id"])}
    bases = np.array([position[u] for u in run.territories["site_unit"]])
    territory_shapes = _territory_shapes(run)
    geographic = (scenario.geometry is not None and scenario.geometry.crs is not None
                  and scenario.geometry.crs.is_geographic)
    figure = go.Figure()
    if geographic:
        shapes = _simplified(scenario.geometry.reset_index(drop=True))
        features = gpd.GeoDataFrame({"id": units["unit_id"].to_numpy()}, geometry=shapes.values,
                                    crs=shapes.crs)
        geojson = json.loads(features.to_json(drop_id=True, to_wgs84=True))
        for feature in geojson["features"]:
            feature["id"] = feature["properties"].pop("id")
        palette_index = {c: k for k, c in enumerate(PALETTE)}
        z = [palette_index[colours[t]] + 0.5 for t in units["territory_id"]]
        scale = []
        for k, colour in enumerate(PALETTE):
            scale += [[k / len(PALETTE), colour], [(k + 1) / len(PALETTE), colour]]
        figure.add_trace(go.Choropleth(
            geojson=geojson, locations=units["unit_id"], z=z, zmin=0, zmax=len(PALETTE),
            colorscale=scale, showscale=False, marker_line_color="white",
            marker_line_width=0.3, customdata=custom, hovertemplate=hover, name="units"))
        if territory_shapes is not None:
            xs, ys = _outline(_simplified(territory_shapes.geometry))
            figure.add_trace(go.Scattergeo(lon=xs, lat=ys, mode="lines", hoverinfo="skip",
                                           line=dict(color="#1f2933", width=1.2),
                                           name="territory borders"))
        if changes is not None:
            parent_shapes = _territory_shapes(changes.parent)
            if parent_shapes is not None:
                xs, ys = _outline(_simplified(parent_shapes.geometry))
                figure.add_trace(go.Scattergeo(lon=xs, lat=ys, mode="lines", hoverinfo="skip",
                                               line=dict(color=PARENT_BORDER, width=2,
                                                         dash="dash"),
                                               name="territory borders before"))
            if len(changes.moves):
                moved = changes.moves["unit_id"].to_numpy()
                wanted = set(moved)
                subset = {"type": "FeatureCollection",
                          "features": [f for f in geojson["features"] if f["id"] in wanted]}
                row_of = {u: k for k, u in enumerate(units["unit_id"])}
                move_custom, move_hover = _move_hover(changes, currency)
                figure.add_trace(go.Choropleth(
                    geojson=subset, locations=moved, z=[z[row_of[u]] for u in moved], zmin=0,
                    zmax=len(PALETTE), colorscale=scale, showscale=False,
                    marker_line_color=MOVED, marker_line_width=2.5, customdata=move_custom,
                    hovertemplate=move_hover, name="moved units"))
        figure.add_trace(go.Scattergeo(
            lon=points[bases, 0], lat=points[bases, 1], mode="markers", name="rep bases",
            marker=dict(symbol="triangle-up", size=7 + 3 * run.territories["n_reps"].to_numpy(),
                        color="black"),
            text=_territory_hover(run, currency), hovertemplate="%{text}<extra></extra>"))
        # explicit ranges: plotly's fitbounds also weighs the border lines and drifts off centre
        minx, miny, maxx, maxy = shapes.total_bounds
        pad_x, pad_y = 0.03 * (maxx - minx) + 1e-3, 0.03 * (maxy - miny) + 1e-3
        figure.update_geos(visible=False, projection_type="mercator", scope="world",
                           resolution=110, lonaxis_range=[minx - pad_x, maxx + pad_x],
                           lataxis_range=[miny - pad_y, maxy + pad_y],
                           center=dict(lon=(minx + maxx) / 2, lat=(miny + maxy) / 2))
    else:
        if territory_shapes is not None:
            for shape, tid, text in zip(territory_shapes.geometry,
                                        territory_shapes["territory_id"],
                                        _territory_hover(run, currency), strict=True):
                xs, ys = _outline(gpd.GeoSeries([shape]))
                figure.add_trace(go.Scatter(x=xs, y=ys, fill="toself", mode="lines",
                                            fillcolor=colours[tid], opacity=0.35,
                                            line=dict(color=colours[tid]), hoveron="fills",
                                            text=text, hoverinfo="text", showlegend=False))
        if changes is not None:
            parent_shapes = _territory_shapes(changes.parent)
            if parent_shapes is not None:
                xs, ys = _outline(parent_shapes.geometry)
                figure.add_trace(go.Scatter(x=xs, y=ys, mode="lines", hoverinfo="skip",
                                            line=dict(color=PARENT_BORDER, width=2, dash="dash"),
                                            name="territory borders before"))
        figure.add_trace(go.Scatter(
            x=points[:, 0], y=points[:, 1], mode="markers", name="units",
            marker=dict(size=11, color=[colours[t] for t in units["territory_id"]],
                        line=dict(color="white", width=1)),
            customdata=custom, hovertemplate=hover))
        if changes is not None and len(changes.moves):
            moved = np.array([position[u] for u in changes.moves["unit_id"]])
            move_custom, move_hover = _move_hover(changes, currency)
            figure.add_trace(go.Scatter(
                x=points[moved, 0], y=points[moved, 1], mode="markers", name="moved units",
                marker=dict(symbol="circle-open", size=21, line=dict(color=MOVED, width=3)),
                customdata=move_custom, hovertemplate=move_hover))
        figure.add_trace(go.Scatter(
            x=points[bases, 0], y=points[bases, 1], mode="markers", name="rep bases",
            marker=dict(symbol="triangle-up", size=9 + 3 * run.territories["n_reps"].to_numpy(),
                        color="black"),
            text=_territory_hover(run, currency), hovertemplate="%{text}<extra></extra>"))
        figure.update_yaxes(scaleanchor="x", scaleratio=1, visible=False)
        figure.update_xaxes(visible=False)
        figure.update_layout(plot_bgcolor="white")
    if changes is None:
        figure.update_layout(showlegend=False)
    else:  # name the dashed borders and the outlined units
        shown = {"territory borders", "territory borders before", "moved units"}
        for trace in figure.data:
            trace.showlegend = trace.name in shown
        figure.update_layout(showlegend=True, legend=dict(orientation="h", y=1.02, x=0,
                                                          yanchor="bottom"))
    return figure


def _territory_shapes(run: RunRecord) -> gpd.GeoDataFrame | None:
    path = run.path / "territories.gpkg"
    if not path.is_file():
        return None
    return gpd.read_file(path, layer="territories")


def write_map_png(run: RunRecord, scenario: Scenario, path: Path,
                  changes: Changes | None = None) -> None:
    """The static territory map for slides (stored shapes, territory colours, rep bases); for a
    re-optimised run also the parent's borders (dashed) and the moved units (hatched)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = territory_colours(run, scenario)
    fig, ax = plt.subplots(figsize=(12, 7.5), dpi=110)
    if scenario.geometry is not None:
        units = gpd.GeoDataFrame({"territory_id": run.assignment["territory_id"].to_numpy()},
                                 geometry=scenario.geometry.values, crs=scenario.geometry.crs)
        units.plot(ax=ax, color=[colours[t] for t in units["territory_id"]], edgecolor="white",
                   linewidth=0.2)
        shapes = _territory_shapes(run)
        if shapes is not None:
            shapes.boundary.plot(ax=ax, color="#1f2933", linewidth=0.6)
    else:
        shapes = _territory_shapes(run)
        if shapes is not None:
            shapes.plot(ax=ax, color=[colours[t] for t in shapes["territory_id"]], alpha=0.35)
        pts = scenario.coordinates.points
        ax.scatter(pts[:, 0], pts[:, 1], s=40,
                   c=[colours[t] for t in run.assignment["territory_id"]], edgecolors="white")
    pts = scenario.coordinates.points
    position = {u: k for k, u in enumerate(run.assignment["unit_id"])}
    if changes is not None:
        _draw_changes_png(ax, scenario, changes, position)
    bases = np.array([position[u] for u in run.territories["site_unit"]])
    ax.scatter(pts[bases, 0], pts[bases, 1], s=12 + 14 * run.territories["n_reps"].to_numpy(),
               c="black", marker="^", zorder=3, label="rep base (size: reps)")
    kpis = run.result["kpis"]
    ax.set_title(f"{run.scenario_name}: {kpis['headcount']} reps in {kpis['territories']} "
                 f"territories; workload per rep {kpis['workload_index_min']:.2f}-"
                 f"{kpis['workload_index_max']:.2f} x mean" + (
                     "" if changes is None else
                     f"\n{len(changes.moves)} unit(s) moved since run "
                     f"{changes.parent.run_id} (hatched); earlier borders dashed"))
    ax.legend(loc="lower left")
    ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def _draw_changes_png(ax, scenario: Scenario, changes: Changes,
                      position: dict[str, int]) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = []
    parent_shapes = _territory_shapes(changes.parent)
    if parent_shapes is not None:
        parent_shapes.boundary.plot(ax=ax, color=PARENT_BORDER, linewidth=1.1, linestyle="--",
                                    zorder=2)
        handles.append(Line2D([], [], color=PARENT_BORDER, linestyle="--",
                              label="territory borders before"))
    moved = np.array([position[u] for u in changes.moves["unit_id"]], dtype=np.int64)
    if len(moved):
        if scenario.geometry is not None:
            shapes = gpd.GeoSeries(scenario.geometry.values[moved], crs=scenario.geometry.crs)
            shapes.plot(ax=ax, facecolor="none", edgecolor=MOVED, hatch="////", linewidth=1.0,
                        zorder=2)
        else:
            pts = scenario.coordinates.points
            ax.scatter(pts[moved, 0], pts[moved, 1], s=260, facecolors="none",
                       edgecolors=MOVED, linewidths=2.5, zorder=2)
        handles.append(Patch(facecolor="none", edgecolor=MOVED, hatch="////",
                             label="moved units"))
    if handles:  # kept as an artist: the rep-base legend below replaces the axes' legend
        ax.add_artist(ax.legend(handles=handles, loc="upper right"))


def write_map_html(figure: go.Figure, run: RunRecord, path: Path) -> None:
    """The map on its own page, plotly.js inline (about 5 MB), no request out."""
    figure = go_copy(figure)
    figure.update_layout(height=None, margin=dict(l=0, r=0, t=0, b=0))
    div = figure.to_html(full_html=False, include_plotlyjs=False, div_id="territory-map",
                         default_height="calc(100vh - 34px)",
                         config={"displaylogo": False, "responsive": True})
    kpis = run.result["kpis"]
    page = render("map.html.j2", title=f"Territory map: {run.scenario_name}",
                  subtitle=f"run {run.run_id} · {kpis['headcount']} reps in "
                           f"{kpis['territories']} territories · hover a unit for its figures",
                  map_div=div)
    path.write_text(page, encoding="utf-8")


def go_copy(figure: go.Figure) -> go.Figure:
    import plotly.graph_objects as go

    return go.Figure(figure)


# --- the balance chart ------------------------------------------------------------------------

def balance_figure(run: RunRecord) -> go.Figure:
    """Workload and potential per rep of each territory against the mean, tolerance band."""
    import plotly.graph_objects as go

    terr = run.territories.copy()
    headcount = float(terr["n_reps"].sum())
    terr["potential_index"] = (terr["potential"] / terr["n_reps"]) / (
        terr["potential"].sum() / headcount)
    terr = terr.sort_values("workload_per_rep_index")
    tolerance = float(run.result["kpis"].get("balance_tolerance", 0.1))
    figure = go.Figure([
        go.Bar(y=terr["territory_id"], x=terr["workload_per_rep_index"], orientation="h",
               name="workload per rep", marker_color="#4e79a7",
               hovertemplate="%{y}: workload per rep %{x:.3f} x mean<extra></extra>"),
        go.Bar(y=terr["territory_id"], x=terr["potential_index"], orientation="h",
               name="potential per rep", marker_color="#f28e2b",
               hovertemplate="%{y}: potential per rep %{x:.3f} x mean<extra></extra>"),
    ])
    figure.add_vrect(x0=1 - tolerance, x1=1 + tolerance, fillcolor="#59a14f", opacity=0.15,
                     line_width=0)
    figure.add_vline(x=1.0, line_color="#1f2933", line_width=1)
    figure.update_layout(barmode="group", legend=dict(orientation="h", y=1.06),
                         xaxis_title="per rep, x mean", plot_bgcolor="white")
    return figure


# --- the workbook -----------------------------------------------------------------------------

READABLE = {
    "unit_id": "Unit", "name": "Name", "region": "Region", "territory_id": "Territory",
    "rep_id": "Rep", "rep_ids": "Reps", "potential": "Potential", "workload": "Workload (h)",
    "last_year_sales": "Last year's sales", "effort_hours": "Effort (h)",
    "expected_sales": "Expected sales", "travel_cost": "Travel cost", "km_to_site": "km to base",
    "site_unit": "Base unit", "n_reps": "Reps (n)", "n_units": "Units (n)",
    "workload_per_rep_index": "Workload per rep (x mean)", "effective_hours": "Effective hours",
    "people_cost": "People cost", "mean_km_to_site": "Mean km to base",
    "max_km_to_site": "Max km to base", "quota": "Quota", "attainability": "Quota / expected",
    "kind": "Kind", "home_unit": "Home unit", "start_month": "Start month",
    "plan_year_cost": "Plan-year cost", "annual": "Annual",
    "from_territory": "From territory", "from_rep": "From rep", "to_territory": "To territory",
    "to_rep": "To rep", "ytd_sales": "Sales this year", "forced": "Had to move",
    "expected_sales_remaining": "Expected sales, months left",
    "quota_remaining": "Quota, months left", "units_gained": "Units gained (n)",
    "quota_of_units_gained": "Quota of units gained", "units_lost": "Units lost (n)",
    "quota_of_units_lost": "Quota of units lost", "point": "Point", "cap": "Cap",
    "cap_share": "Cap share", "units_moved": "Units moved (n)", "value_moved": "Sales moved",
    "disruption": "Disruption", "objective": "Objective",
}

INTEGER = "#,##0"
MONEY = "#,##0.00"
HOURS = "#,##0.0"
RATIO = "0.000"
PERCENT = "0.0%"


def number_format(column: str) -> str | None:
    """The Excel number format of a column, by what it measures."""
    name = column.lower()
    if any(k in name for k in ("index", "attainability", "x mean", "ratio", "/ expected")):
        return RATIO
    if any(k in name for k in ("share", "%", "attainment", "mape", "bias")):
        return PERCENT
    if any(k in name for k in ("hours", "(h)", "workload", "effort", "km")):
        return HOURS
    if any(k in name for k in ("(n)", "month", "units", "reps", "calls")) and "sales" not in name:
        return INTEGER
    if any(k in name for k in ("sales", "potential", "quota", "cost", "annual", "gap", "target",
                               "budget", "contribution", "variance", "part", "projection",
                               "actual", "expected")) or column in MONTH_NAMES or \
            column[:3] in MONTH_NAMES:
        return MONEY
    return None


def write_sheet(writer: pd.ExcelWriter, frame: pd.DataFrame, sheet: str, *, startrow: int = 0,
                startcol: int = 0, freeze: bool = True) -> None:
    """A table with a bold, frozen header row, number formats and column widths."""
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter

    frame.to_excel(writer, sheet_name=sheet, index=False, startrow=startrow, startcol=startcol)
    sheet_ = writer.sheets[sheet]
    header_row = startrow + 1
    for k, column in enumerate(frame.columns):
        col = startcol + k + 1
        cell = sheet_.cell(row=header_row, column=col)
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DCE6F0")
        fmt = number_format(str(column))
        values = frame[column]
        if fmt and pd.api.types.is_numeric_dtype(values):
            for row in range(header_row + 1, header_row + 1 + len(frame)):
                sheet_.cell(row=row, column=col).number_format = fmt
        longest = max([len(str(column))] + [len(f"{v:,.2f}") if isinstance(v, float) else
                                            len(str(v)) for v in values.head(200)])
        letter = get_column_letter(col)
        sheet_.column_dimensions[letter].width = max(
            sheet_.column_dimensions[letter].width or 0, min(48, longest + 2))
    if freeze:
        sheet_.freeze_panes = sheet_.cell(row=header_row + 1, column=startcol + 1)


def sheet_name(text: str, taken: set[str]) -> str:
    """An Excel sheet name: at most 31 characters, none of ``[]:*?/\\``, unique."""
    clean = "".join("_" if ch in '[]:*?/\\' else ch for ch in text)[:31]
    name, k = clean, 1
    while name.lower() in {t.lower() for t in taken}:
        k += 1
        name = f"{clean[:28]}~{k}"
    taken.add(name)
    return name


def readable(frame: pd.DataFrame, year: int | None = None) -> pd.DataFrame:
    names = {c: READABLE.get(c, c) for c in frame.columns}
    if year is not None:
        names.update({m: f"{MONTH_NAMES[k]} {year}" for k, m in enumerate(MONTHS)})
    return frame.rename(columns=names)


def rep_plan_tables(run: RunRecord) -> dict[str, tuple[pd.DataFrame, pd.DataFrame, dict]]:
    """Each rep's personal plan: their units with their share of the effort, monthly targets.

    Reps sharing a territory (a team) share its units; each gets the share of the effort and of
    the expected sales that their effective hours are of the team's.
    """
    plans = {}
    reps = run.reps
    team_hours = reps.groupby("territory_id")["effective_hours"].transform("sum")
    quotas = run.quotas.set_index("rep_id")
    for rep, hours_total in zip(reps.itertuples(), team_hours, strict=True):
        share = rep.effective_hours / hours_total if hours_total > 0 else 0.0
        members = run.assignment[run.assignment["territory_id"] == rep.territory_id]
        units = pd.DataFrame({
            "unit_id": members["unit_id"], "name": members.get("name", members["unit_id"]),
            "potential": members["potential"], "workload": members["workload"],
            "effort_hours": members["effort_hours"] * share,
            "expected_sales": members["expected_sales"] * share}).reset_index(drop=True)
        months = pd.DataFrame({"month": MONTH_NAMES,
                               "target": quotas.loc[rep.rep_id, MONTHS].astype(float).to_numpy()})
        info = {"rep_id": rep.rep_id, "name": getattr(rep, "name", ""), "kind": rep.kind,
                "territory_id": rep.territory_id, "home_unit": rep.home_unit,
                "start_month": int(rep.start_month), "effective_hours": rep.effective_hours,
                "share": share, "expected_sales": rep.expected_sales, "quota": rep.quota}
        plans[rep.rep_id] = (units, months, info)
    return plans


def write_plan_xlsx(run: RunRecord, scenario: Scenario, path: Path,
                    changes: Changes | None = None) -> None:
    """plan.xlsx: summary, territories, assignment, head count, quotas, one sheet per rep; a
    re-optimised run adds its moves, the quota reset and the trade-off curve."""
    year = scenario.settings.year
    kpis = run.result["kpis"]
    summary = pd.DataFrame(
        [("scenario", run.scenario_name), ("run", run.run_id),
         ("status", run.result.get("status")), ("gap", run.result.get("gap")),
         *[(k, v) for k, v in kpis.items()],
         *[(f"cost: {k}", v) for k, v in run.result.get("costs", {}).items()],
         *([] if changes is None else
           [("parent run", changes.parent.run_id),
            ("parent objective", run.result.get("parent_objective")),
            *[(f"disruption: {k}", v) for k, v in changes.disruption.items()
              if not isinstance(v, dict)],
            *[(f"quotas: {k}", v) for k, v in changes.quotas.items()
              if k in ("as_of", "annual_quota_total", "sold_to_date", "remaining_target")]])],
        columns=["figure", "value"])
    taken = {"Summary", "Territories", "Assignment", "Head count", "Quotas"}
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        write_sheet(writer, summary, "Summary")
        write_sheet(writer, readable(run.territories), "Territories")
        write_sheet(writer, readable(run.assignment), "Assignment")
        write_sheet(writer, readable(run.headcount), "Head count")
        write_sheet(writer, readable(run.quotas, year), "Quotas")
        if changes is not None:
            taken |= {"Moves", "Quota reset", "Trade-off"}
            write_sheet(writer, readable(changes.moves), "Moves")
            write_sheet(writer, readable(changes.quota_reset), "Quota reset")
            if changes.tradeoff is not None:
                write_sheet(writer, readable(changes.tradeoff), "Trade-off")
        for rep_id, (units, months, info) in rep_plan_tables(run).items():
            name = sheet_name(f"Rep {rep_id}", taken)
            header = pd.DataFrame({
                "figure": ["rep", "name", "kind", "territory", "home unit", "start month",
                           "effective hours", "share of the territory's hours",
                           "expected sales", "annual quota"],
                "value": [info["rep_id"], info["name"], info["kind"], info["territory_id"],
                          info["home_unit"], info["start_month"], round(info["effective_hours"], 1),
                          round(info["share"], 4), round(info["expected_sales"], 2),
                          info["quota"]]})
            write_sheet(writer, readable(units), name, startrow=len(header) + 2)
            write_sheet(writer, months.rename(columns={"month": f"Month {year}",
                                                       "target": "Target"}),
                        name, startrow=len(header) + 2, startcol=units.shape[1] + 1)
            write_sheet(writer, header, name, freeze=False)


# --- the HTML report --------------------------------------------------------------------------

def _kpis(run: RunRecord, currency: str) -> list[dict[str, str]]:
    k = run.result["kpis"]
    r = run.result
    cover = k["expected_sales"] / k["target_sales"] if k.get("target_sales") else float("nan")
    gap = r.get("gap")
    return [
        dict(label="Head count", value=f"{k['headcount']}",
             note=f"{k['kept']} kept, {k['hires']} hires, {k['released']} released, "
                  f"{k['managers']} managers", tone=""),
        dict(label="Territories", value=f"{k['territories']}",
             note=f"{k.get('multi_rep_territories', 0)} team territories", tone=""),
        dict(label="Expected sales", value=money(k["expected_sales"]),
             note=f"{pct(cover)} of the target {money(k['target_sales'])} {currency}",
             tone="good" if cover >= 1 else "warn"),
        dict(label="Contribution", value=money(k["contribution"]),
             note=f"margin on sales less all sales costs ({currency})", tone=""),
        dict(label="Budget used", value=pct(k["budget_used"]),
             note=f"cost {money(k['cost'])} of {money(k['budget'])} {currency}",
             tone="warn" if k["budget_used"] > 1 else "good"),
        dict(label="Workload balance", value=f"{k['workload_index_min']:.2f}–"
                                             f"{k['workload_index_max']:.2f}",
             note=f"per rep, x mean; tolerance ±{k['balance_tolerance']:.0%}",
             tone="good" if k['workload_index_max'] <= 1 + k['balance_tolerance'] + 1e-9 and
             k['workload_index_min'] >= 1 - k['balance_tolerance'] - 1e-9 else "warn"),
        dict(label="Optimality gap", value="—" if gap is None else pct(gap, 2),
             note=f"{r.get('status')} ({r.get('termination')}), {r.get('solver')}, "
                  f"{r.get('runtime_s', 0):.0f} s", tone="good" if r.get("status") == "optimal"
             else ""),
    ]


def tradeoff_figure(curve: pd.DataFrame, run: RunRecord, measure: str, currency: str
                    ) -> go.Figure:
    """Objective against disruption, one point per cap of the sweep, and this run's plan."""
    import plotly.graph_objects as go

    by_units = measure == "units"
    x = curve["units_moved"] if by_units else curve["value_moved"]
    label = "units moved" if by_units else f"last year's sales moved ({currency})"
    text = [f"point {int(r.point)}: cap {r.cap:,.0f}<br>{int(r.units_moved)} unit(s) moved, "
            f"sales moved {money(r.value_moved)}<br>objective {money(r.objective)}"
            for r in curve.itertuples()]
    figure = go.Figure(go.Scatter(
        x=x, y=curve["objective"], mode="lines+markers+text", name="best plan within each cap",
        text=[str(int(p)) for p in curve["point"]], textposition="top left",
        marker=dict(size=9, color="#4e79a7"), line=dict(color="#4e79a7"),
        hovertext=text, hovertemplate="%{hovertext}<extra></extra>"))
    d = run.result.get("disruption", {})
    figure.add_trace(go.Scatter(
        x=[d.get("units_moved") if by_units else d.get("value_moved")],
        y=[run.result.get("objective")], mode="markers", name="this plan",
        marker=dict(symbol="star", size=16, color=MOVED),
        hovertemplate="this plan: %{x:,.0f} moved, objective %{y:,.0f}<extra></extra>"))
    figure.update_layout(xaxis_title=label, yaxis_title=f"objective ({currency})",
                         plot_bgcolor="white", legend=dict(orientation="h", y=1.08))
    figure.update_xaxes(gridcolor="#e4e7eb", zeroline=False)
    figure.update_yaxes(gridcolor="#e4e7eb")
    return figure


def _change_kpis(run: RunRecord, changes: Changes, currency: str) -> list[dict[str, str]]:
    d, q = changes.disruption, changes.quotas
    cap = d.get("cap")
    before, after = run.result.get("parent_objective"), run.result.get("objective")
    ytd = d.get("ytd_sales_moved")
    kpis = [
        dict(label="Units moved", value=f"{d.get('units_moved', len(changes.moves))}",
             note=f"{pct(d.get('units_moved_share'), 2)} of units; {d.get('forced_units', 0)} "
                  "had to move (their rep left, or a new base)", tone=""),
        dict(label="Sales moved", value=money(d.get("value_moved", 0.0)),
             note=f"{pct(d.get('value_moved_share'), 2)} of last year's sales ({currency})" + (
                 "" if ytd is None else f"; {money(ytd)} sold there this year"), tone=""),
        dict(label="Reps affected", value=f"{d.get('reps_affected', 0)}",
             note="reps who lose or gain units", tone=""),
    ]
    if cap:
        used, limit = float(cap["used"]), float(cap["limit"])
        unit = "units" if cap["measure"] == "units" else currency
        kpis.append(dict(label="Disruption cap", value=f"{used / limit:.0%} used" if limit else
                         "—", note=f"{used:,.0f} of {limit:,.0f} {unit} "
                                   f"({cap['measure']} {cap['share']:.2%})",
                         tone="warn" if used > limit + 1e-6 else "good"))
    else:
        weight = d.get("disruption_weight")
        kpis.append(dict(label="Disruption control", value="no cap",
                         note=d.get("mode", "") + ("" if weight is None else
                                                   f", weight {weight:g} per unit of sales moved"),
                         tone=""))
    if before is not None and after is not None:
        change = (after - before) / abs(before) if before else float("nan")
        kpis.append(dict(label="Objective after", value=money(after),
                         note=f"parent plan {money(before)} ({change:+.1%}, people "
                              "changes included)", tone=""))
    if q:
        kpis.append(dict(label="Target left", value=money(q.get("remaining_target", 0.0)),
                         note=f"annual quotas {money(q.get('annual_quota_total', 0.0))} less "
                              f"{money(q.get('sold_to_date', 0.0))} sold by {q.get('as_of')}",
                         tone=""))
    return kpis


def _changes_context(run: RunRecord, changes: Changes, scenario: Scenario) -> dict[str, Any]:
    """What the report's section on the re-optimisation shows."""
    currency = scenario.settings.currency
    d, q, people = changes.disruption, changes.quotas, changes.people
    parts = []
    for key, label in (("departures", "left"), ("vacancies", "left, seat kept open")):
        if people.get(key):
            parts.append(f"{', '.join(people[key])} {label}")
    hires = people.get("hires") or []
    if hires:
        parts.append("hires " + ", ".join(
            f"{h.get('rep_id')} (from month {h.get('start_month')})" if isinstance(h, dict)
            else str(h) for h in hires))
    mode = d.get("mode", "")
    lead = (f"Re-optimised as of {q.get('as_of', '?')} from run {changes.parent.run_id}"
            f" ({'; '.join(parts) if parts else 'no people change'}); {mode}. "
            f"{len(changes.moves)} unit(s) changed owner.")
    moves = changes.moves.drop(columns=["name"], errors="ignore")
    quota_reset = changes.quota_reset
    fmt = {c: (lambda v: money(v) if isinstance(v, (int, float)) and np.isfinite(v) else "")
           for c in ["Last year's sales", "Sales this year", "Potential", "Quota, months left",
                     "Expected sales, months left", "Quota of units gained",
                     "Quota of units lost", "Sales moved", "Objective"]}
    fmt["Quota / expected"] = lambda v: f"{v:.3f}" if np.isfinite(v) else ""
    fmt["Had to move"] = lambda v: "yes" if v else ""
    context: dict[str, Any] = dict(
        changes_lead=lead, change_kpis=_change_kpis(run, changes, currency),
        moves_table=html_table(readable(moves), fmt, table_id="moves-table"),
        quota_reset_table=html_table(readable(quota_reset), fmt, table_id="quota-reset-table"),
        quota_note=(f"Quotas for {q['months_left'][0]} to {q['months_left'][-1]}: "
                    f"{money(q.get('remaining_quota_total', 0.0))} {currency}, the annual quota "
                    f"total less what was sold, spread so that every rep's months left are "
                    "equally attainable; reps who gain or lose units carry those units' "
                    "pro-rated quota." if q.get("months_left") else "No months are left."),
        tradeoff_div="", tradeoff_table="")
    if changes.tradeoff is not None and len(changes.tradeoff):
        context["tradeoff_div"] = figure_div(tradeoff_figure(
            changes.tradeoff, run, d.get("measure", "units"), currency), "tradeoff-chart", 380)
        context["tradeoff_table"] = html_table(readable(changes.tradeoff), fmt,
                                               table_id="tradeoff-table")
    return context


def build_report_html(run: RunRecord, scenario: Scenario, map_figure: go.Figure,
                      changes: Changes | None = None) -> str:
    currency = scenario.settings.currency
    year = scenario.settings.year
    k = run.result["kpis"]
    r = run.result
    headline = (f"{k['headcount']} reps in {k['territories']} territories cover "
                f"{scenario.n_units:,} units and are expected to sell {money(k['expected_sales'])} "
                f"{currency} in {year} against a target of {money(k['target_sales'])}; "
                f"the plan costs {money(k['cost'])} ({pct(k['budget_used'])} of the budget). "
                f"Why this size: {r.get('binding', '')}.")
    warning = ""
    if r.get("status") != "optimal" and r.get("gap") is not None:
        warning = (f"The solver stopped on {r.get('termination')}: this plan is feasible and "
                   f"within {pct(r['gap'], 2)} of the best bound {money(r['bound'])}, "
                   "not proven optimal.")
    costs = run.result.get("costs", {})
    cost_table = html_table(pd.DataFrame({"cost": list(costs),
                                          f"{currency}": [money(v) for v in costs.values()]}))
    people = pd.DataFrame({
        "": ["existing reps kept", "new hires", "reps released", "managers", "training (hires)"],
        "number": [k["kept"], k["hires"], k["released"], k["managers"], k["hires"]]})
    headcount = readable(run.headcount.drop(columns=["name"], errors="ignore"))
    territories = readable(run.territories)
    quotas = readable(run.quotas, year)
    fmt_money = {c: (lambda v: money(v) if isinstance(v, (int, float)) and np.isfinite(v) else "")
                 for c in [*quotas.columns[2:], "Quota", "Expected sales", "Potential",
                           "Plan-year cost", "Last year's sales", "Travel cost", "People cost"]}
    plans = []
    for rep_id, (units, months, info) in rep_plan_tables(run).items():
        plans.append(dict(
            rep_id=rep_id, name=info["name"], territory_id=info["territory_id"],
            quota=f"{money(info['quota'])} {currency}", n_units=len(units),
            note=(f"{info['kind']}, based at unit {info['home_unit']}, starts in month "
                  f"{info['start_month']}; {info['effective_hours']:,.0f} effective hours "
                  f"({info['share']:.0%} of the territory's); expected sales "
                  f"{money(info['expected_sales'])} {currency}"),
            units=html_table(readable(units), {"Potential": money, "Expected sales": money}),
            months=html_table(months.rename(columns={"target": f"target ({currency})"}),
                              {f"target ({currency})": money})))
    solver = pd.DataFrame({"": ["status", "termination", "objective", "best bound", "gap",
                                "runtime (s)", "solver", "seed", "threads", "time limit (s)",
                                "scenario file", "scenario sha256", "created"],
                           "value": [str(r.get("status")), str(r.get("termination")),
                                     _num(r.get("objective")), _num(r.get("bound")),
                                     pct(r["gap"], 3) if r.get("gap") is not None else "",
                                     _num(r.get("runtime_s"), 1), str(r.get("solver")),
                                     str(r.get("seed")), str(r.get("threads")),
                                     str(r.get("time_limit_s")), str(r.get("scenario_file")),
                                     str(r.get("scenario_sha256", ""))[:16],
                                     str(r.get("created"))]})
    nav = [("#map", "Map"), ("#balance", "Balance"), ("#headcount", "Head count"),
           ("#territories", "Territories"), ("#quotas", "Quotas"), ("#plans", "Personal plans"),
           ("#solver", "Solver"), ("plan.xlsx", "plan.xlsx"), ("map.html", "map.html")]
    extra: dict[str, Any] = {"changes": changes is not None}
    title = f"Sales plan {year}: {run.scenario_name}"
    if changes is not None:
        nav = [("#changes", "Changes"), *nav]
        extra.update(_changes_context(run, changes, scenario))
        title = f"Mid-year plan {year}: {run.scenario_name}"
    return render(
        "report.html.j2",
        title=title,
        subtitle=f"run {run.run_id} · {r.get('objective_sense', '')} · {r.get('status')}",
        nav=nav, **extra,
        headline=headline, warning=warning, kpis=_kpis(run, currency),
        map_div=figure_div(map_figure, "territory-map", 560),
        balance_div=figure_div(balance_figure(run), "balance-chart",
                               max(360, 26 * len(run.territories) + 120)),
        tolerance=f"{k['balance_tolerance']:.0%}",
        people_table=html_table(people), cost_table=cost_table,
        headcount_table=html_table(headcount, fmt_money, table_id="headcount-table"),
        territory_table=html_table(territories, fmt_money, table_id="territory-table"),
        quota_table=html_table(quotas, fmt_money, table_id="quota-table"),
        currency=currency, seasonality=", ".join(f"{v:g}" for v in
                                                 scenario.settings.quotas.seasonality),
        rep_plans=plans, solver_table=html_table(solver),
        gap_note=("The gap compares the plan's objective with the best bound over all head "
                  "counts: the true optimum lies between them."),
    )


def _num(value: Any, digits: int = 0) -> str:
    return "" if value is None else f"{float(value):,.{digits}f}"


@dataclass(frozen=True)
class ReportFiles:
    folder: Path
    files: dict[str, Path]


def write_report(run: RunRecord | str | Path, reports_dir: str | Path = "reports",
                 scenario: Scenario | None = None) -> ReportFiles:
    """Write report.html, map.html, map.png and plan.xlsx of a run into its report folder."""
    record = run if isinstance(run, RunRecord) else read_run(run)
    # a re-optimised run loads its parent's scenario (same units and shapes); its own people
    # come from its head-count table
    scenario = scenario if scenario is not None else record.load_scenario()
    _check_units_match(record, scenario)
    changes = read_changes(record)
    folder = report_folder(record, reports_dir)
    figure = territory_map_figure(record, scenario, changes)
    files = publish({
        "map.html": lambda p: write_map_html(figure, record, p),
        "map.png": lambda p: write_map_png(record, scenario, p, changes),
        "plan.xlsx": lambda p: write_plan_xlsx(record, scenario, p, changes),
        "report.html": lambda p: p.write_text(build_report_html(record, scenario, figure,
                                                                changes), encoding="utf-8"),
    }, folder)
    return ReportFiles(folder=folder, files=files)
