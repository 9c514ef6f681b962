"""The run report and the evaluation page: files, workbooks that read back to the CSVs, and the
HTML pages opened in headless Debian chromium with the network off."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from allocator.actuals import simulate_actuals, write_table_atomic
from allocator.cli import main
from allocator.evaluate import write_evaluation
from allocator.report import publish, write_report
from allocator.runs import read_run

CHROMIUM = "chromium"  # Debian's package; .ci/run installs it


# --- the browser --------------------------------------------------------------------------

def open_page(browser, path: Path, *, hover: str | None = None) -> dict:
    """Load a page offline; return what went wrong, what it drew and its screenshot."""
    context = browser.new_context(offline=True, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url}"))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.resolve().as_uri(), wait_until="load")
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length > 0")
    page.wait_for_timeout(500)
    counts = page.evaluate("""() => ({
        plots: document.querySelectorAll('.js-plotly-plot').length,
        unit_shapes: document.querySelectorAll('.choroplethlocation').length,
        points: document.querySelectorAll('.scatterlayer .point').length,
        bars: document.querySelectorAll('.barlayer .point').length,
        tables: document.querySelectorAll('table.data').length,
    })""")
    tables = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll(
        'table.data[id]')].map(t => [t.id, t.querySelectorAll('tbody tr').length]))""")
    hover_text = ""
    if hover:
        box = page.locator(hover).first.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_timeout(400)
        hover_text = page.evaluate(
            "() => [...document.querySelectorAll('.hoverlayer')].map(h => h.textContent).join(' ')")
    shot = page.screenshot(full_page=False)
    context.close()
    return {"problems": problems, "requests": requests, "counts": counts, "tables": tables,
            "hover": hover_text, "screenshot": shot}


def assert_clean_and_drawn(result: dict) -> None:
    from PIL import Image

    assert result["problems"] == []
    assert all(url.startswith("file://") for url in result["requests"]), result["requests"]
    pixels = np.asarray(Image.open(io.BytesIO(result["screenshot"])).convert("RGB"), dtype=float)
    # not blank: many pixels differ from the most common colour, and the page has colour range
    flat = pixels.reshape(-1, 3)
    values, counts = np.unique(flat, axis=0, return_counts=True)
    background = values[np.argmax(counts)]
    assert (np.abs(flat - background).sum(axis=1) > 30).mean() > 0.10
    assert pixels.std() > 20


def external_references(page: str) -> list[str]:
    """``src``/``href`` attributes that point at the web, outside inline scripts."""
    markup = re.sub(r"<script\b[^>]*>.*?</script>", "", page, flags=re.S | re.I)
    return re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//[^"' >]+""", markup, flags=re.I)


# --- Texas: report, synthetic actuals, evaluation ----------------------------------------

@pytest.fixture(scope="module")
def texas_reports(texas_run, tmp_path_factory) -> tuple[Path, Path]:
    reports = tmp_path_factory.mktemp("reports")
    record = read_run(texas_run)
    scenario = record.load_scenario()
    written = write_report(record, reports, scenario)
    actuals = write_table_atomic(simulate_actuals(record, "2027-06", seed=0, scenario=scenario),
                                 written.folder / "actuals_synthetic.csv")
    write_evaluation(record, actuals, reports_dir=reports)
    return texas_run, written.folder


def test_every_report_file_is_written(texas_reports):
    run, folder = texas_reports
    assert folder.parts[-2:] == ("texas", run.name)
    for name in ("report.html", "map.html", "map.png", "plan.xlsx", "actuals_synthetic.csv",
                 "evaluation.html", "evaluation.xlsx", "evaluation.csv",
                 "response_recalibrated.yaml"):
        assert (folder / name).stat().st_size > 500, name
    assert not list(folder.parent.glob(".tmp-*"))
    for name in ("report.html", "map.html", "evaluation.html"):
        page = (folder / name).read_text(encoding="utf-8")
        assert external_references(page) == [], name
        assert "<script src" not in page and "<link" not in page
        assert 1e6 < len(page) < 12e6  # plotly.js inline (about 4.8 MB), sane in all


def test_report_html_renders_offline(browser, texas_reports):
    run, folder = texas_reports
    record = read_run(run)
    result = open_page(browser, folder / "report.html")
    assert_clean_and_drawn(result)
    assert result["counts"]["unit_shapes"] == len(record.assignment) == 254
    assert result["counts"]["plots"] == 2  # the map and the balance chart
    assert result["counts"]["bars"] == 2 * len(record.territories)
    assert result["tables"]["quota-table"] == len(record.quotas)
    assert result["tables"]["territory-table"] == len(record.territories)
    assert result["tables"]["headcount-table"] == len(record.headcount)


def test_map_html_renders_offline_and_hover_names_the_unit(browser, texas_reports):
    run, folder = texas_reports
    record = read_run(run)
    result = open_page(browser, folder / "map.html", hover=".choroplethlocation")
    assert_clean_and_drawn(result)
    assert result["counts"]["unit_shapes"] == 254
    unit = record.assignment.iloc[0]
    assert unit["name"] in result["hover"] and unit["territory_id"] in result["hover"]
    assert "expected sales" in result["hover"]


def test_evaluation_html_renders_offline(browser, texas_reports):
    run, folder = texas_reports
    record = read_run(run)
    result = open_page(browser, folder / "evaluation.html")
    assert_clean_and_drawn(result)
    assert result["counts"]["plots"] == 4
    assert result["tables"]["rep-table"] == len(record.reps)
    assert result["tables"]["territory-table"] == len(record.territories)
    assert result["tables"]["month-table"] == 6
    assert result["tables"]["assumption-table"] >= 6


def test_plan_xlsx_reads_back_to_the_run_tables(texas_reports):
    from openpyxl import load_workbook

    run, folder = texas_reports
    record = read_run(run)
    path = folder / "plan.xlsx"
    for sheet, name in [("Territories", "territories"), ("Assignment", "assignment"),
                        ("Head count", "headcount"), ("Quotas", "quotas")]:
        csv = pd.read_csv(run / f"{name}.csv", dtype={"unit_id": str, "site_unit": str,
                                                      "home_unit": str})
        xlsx = pd.read_excel(path, sheet_name=sheet, dtype={0: str})
        assert xlsx.shape == csv.shape, sheet
        for k, column in enumerate(csv.columns):
            ours, theirs = xlsx.iloc[:, k], csv[column]
            if pd.api.types.is_numeric_dtype(theirs):
                np.testing.assert_allclose(ours.to_numpy(float), theirs.to_numpy(float),
                                           rtol=1e-12, equal_nan=True, err_msg=f"{sheet} {column}")
            else:
                assert ours.fillna("").astype(str).tolist() == \
                    theirs.fillna("").astype(str).tolist(), f"{sheet} {column}"
    book = load_workbook(path)
    rep_sheets = [s for s in book.sheetnames if s.startswith("Rep ")]
    assert len(rep_sheets) == len(record.reps)
    territories = book["Territories"]
    assert territories.freeze_panes == "A2"
    assert territories["A1"].font.bold
    headers = [c.value for c in territories[1]]
    quota_column = headers.index("Quota") + 1
    assert territories.cell(row=2, column=quota_column).number_format == "#,##0.00"
    first = book[rep_sheets[0]]
    assert first.freeze_panes is not None and first["A1"].value == "figure"
    # the rep sheet's monthly targets add up to the rep's annual quota
    rep_id = rep_sheets[0].removeprefix("Rep ")
    months = pd.read_excel(path, sheet_name=rep_sheets[0], skiprows=12, usecols="H:I")
    assert months.iloc[:, 1].sum() == pytest.approx(
        float(record.quotas.set_index("rep_id").loc[rep_id, "annual"]))


def test_evaluation_xlsx_reads_back_to_the_csv(texas_reports):
    _, folder = texas_reports
    csv = pd.read_csv(folder / "evaluation.csv")
    xlsx = pd.read_excel(folder / "evaluation.xlsx", sheet_name="Reps")
    assert list(xlsx.columns) == list(csv.columns)
    numeric = csv.select_dtypes("number").columns
    np.testing.assert_allclose(xlsx[numeric].to_numpy(float), csv[numeric].to_numpy(float),
                               rtol=1e-12, equal_nan=True)
    territories = pd.read_excel(folder / "evaluation.xlsx", sheet_name="Territories")
    assert territories["actual_to_date"].sum() == pytest.approx(csv["actual_to_date"].sum())


# --- a planar scenario (no shapes): the map falls back to points -------------------------

def test_tiny_report_cli_and_points_map(browser, tiny_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["report", str(tiny_run), "--json"])
    assert result.exit_code == 0, result.output
    written = json.loads(result.output)
    folder = Path(written["folder"])
    assert folder == Path("reports") / "tiny" / tiny_run.name
    assert sorted(written["files"]) == ["map.html", "map.png", "plan.xlsx", "report.html"]
    page = open_page(browser, folder / "map.html")
    assert_clean_and_drawn(page)
    # 12 unit markers and one base per territory
    assert page["counts"]["points"] == 12 + len(read_run(tiny_run).territories)
    assert runner.invoke(main, ["report", "--help"]).exit_code == 0
    missing = runner.invoke(main, ["report", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "run folder not found" in missing.output


def test_a_failing_writer_leaves_no_partial_report(tmp_path):
    folder = tmp_path / "reports" / "x" / "run"
    folder.mkdir(parents=True)
    (folder / "report.html").write_text("the earlier report")

    def broken(path: Path) -> None:
        path.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        publish({"report.html": lambda p: p.write_text("new"), "plan.xlsx": broken}, folder)
    assert (folder / "report.html").read_text() == "the earlier report"
    assert sorted(p.name for p in folder.parent.iterdir()) == ["run"]
    assert sorted(p.name for p in folder.iterdir()) == ["report.html"]


def test_map_shapes_wind_clockwise_after_simplification():
    """Simplifying the US coverage flips some rings; plotly's geo maps would then paint the
    whole globe outside such a county. Every exterior ring must come out clockwise."""
    import shapely

    from allocator.report import _simplified
    from allocator.scenario import load_scenario

    scenario = load_scenario(Path(__file__).resolve().parent.parent / "scenarios" /
                             "us_counties.yaml")
    shapes = _simplified(scenario.geometry.reset_index(drop=True))
    assert len(shapes) == 3108 and shapes.is_valid.all()
    assert shapes.count_coordinates().sum() < 0.5 * scenario.geometry.count_coordinates().sum()
    rings = [part.exterior for geom in shapes for part in getattr(geom, "geoms", [geom])]
    assert not any(shapely.is_ccw(ring) for ring in rings)


# --- a re-optimised run: the before/after page -------------------------------------------

@pytest.fixture(scope="module")
def reoptimized_report(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A 5 x 5 parent, its re-optimisation after rep R2 left (with a trade-off sweep), and the
    child's report written through the CLI: (parent run, child run, report folder)."""
    from allocator.disruption import DisruptionLimit, PeopleChanges
    from allocator.reoptimize import reoptimize, write_reoptimized_run
    from test_reoptimize import AS_OF, solve_parent

    root = tmp_path_factory.mktemp("reoptimized")
    parent, actuals = solve_parent(root)
    result = reoptimize(parent, actuals, AS_OF, people=PeopleChanges(departures=("R2",)),
                        max_moved=DisruptionLimit.parse("60%"), tradeoff=3, time_limit=10)
    child = write_reoptimized_run(result, root / "models")
    out = CliRunner().invoke(main, ["report", str(child), "--reports-dir",
                                    str(root / "reports"), "--json"])
    assert out.exit_code == 0, out.output
    return parent, child, Path(json.loads(out.output)["folder"])


def moved_unit_hover(browser, path: Path, move: pd.Series) -> dict:
    """Open the page offline, put the mouse on the moved unit ``move`` and read the hover."""
    context = browser.new_context(offline=True, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url}"))
    page.goto(path.resolve().as_uri(), wait_until="load")
    page.wait_for_function("document.querySelectorAll('#territory-map .main-svg').length > 0")
    page.locator("#territory-map").scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    # the page position of the moved unit, from the plot's own axes
    drawn = page.evaluate("""(unit) => {
        const plot = document.getElementById('territory-map');
        // _fullData: the arrays decoded (plot.data may hold them base64-encoded)
        const traces = plot._fullData.map(t => ({name: t.name, n: (t.x || []).length,
                                                 ids: Array.from(t.customdata || [],
                                                                 c => c[0])}));
        const moved = plot._fullData.find(t => t.name === 'moved units');
        const k = moved.customdata.findIndex(c => c[0] === unit);
        const fl = plot._fullLayout, box = plot.getBoundingClientRect();
        return {traces: traces, x: box.left + fl._size.l + fl.xaxis.l2p(moved.x[k]),
                y: box.top + fl._size.t + fl.yaxis.l2p(moved.y[k])};
    }""", move["unit_id"])
    page.mouse.move(drawn["x"], drawn["y"])
    page.wait_for_timeout(400)
    text = page.evaluate(
        "() => [...document.querySelectorAll('.hoverlayer')].map(h => h.textContent).join(' ')")
    context.close()
    return {"problems": problems, "traces": drawn["traces"], "hover": text}


def test_reoptimized_report_shows_before_and_after(browser, reoptimized_report):
    parent, child, folder = reoptimized_report
    record = read_run(child)
    moves = pd.read_csv(child / "moves.csv", dtype={"unit_id": str})
    quota_reset = pd.read_csv(child / "quota_reset.csv")
    assert len(moves) >= 2  # R2's units, at least
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert external_references(page) == [] and "<script src" not in page
    result = open_page(browser, folder / "report.html")
    assert_clean_and_drawn(result)
    assert result["counts"]["plots"] == 3  # before/after map, balance, trade-off
    assert result["tables"]["moves-table"] == len(moves)
    assert result["tables"]["quota-reset-table"] == len(quota_reset) == len(record.reps)
    assert result["tables"]["tradeoff-table"] == 3
    # the disruption figures of result.json are the page's KPIs
    d = record.result["disruption"]
    for figure in (f"{d['units_moved']}", f"{d['value_moved']:,.0f}", read_run(parent).run_id):
        assert figure in page, figure
    # the moved units are drawn, one outlined marker each, and the parent's borders too
    first = moves.iloc[0]
    hovered = moved_unit_hover(browser, folder / "report.html", first)
    assert hovered["problems"] == []
    traces = {t["name"]: t for t in hovered["traces"]}
    assert traces["moved units"]["ids"] == moves["unit_id"].tolist()
    assert traces["territory borders before"]["n"] > 0
    # hovering a moved unit names where it came from and where it went
    for text in (first["from_territory"], first["from_rep"], first["to_territory"],
                 first["to_rep"]):
        assert text in hovered["hover"], (text, hovered["hover"])
    assert "moved" in hovered["hover"]


def test_reoptimized_report_files_and_a_missing_parent(reoptimized_report, tmp_path):
    _, child, folder = reoptimized_report
    moves = pd.read_csv(child / "moves.csv", dtype={"unit_id": str})
    sheet = pd.read_excel(folder / "plan.xlsx", sheet_name="Moves", dtype={"Unit": str})
    assert sheet["Unit"].tolist() == moves["unit_id"].tolist()
    np.testing.assert_allclose(sheet["Last year's sales"], moves["last_year_sales"])
    reset = pd.read_excel(folder / "plan.xlsx", sheet_name="Quota reset")
    assert reset["Quota, months left"].sum() == pytest.approx(
        read_run(child).result["quotas"]["remaining_quota_total"], abs=0.01)
    assert (folder / "map.png").stat().st_size > 10_000
    # a child whose parent folder is gone: a clear input error, not a traceback
    orphan = tmp_path / "models" / "tiny" / child.name
    shutil.copytree(child, orphan)
    record = json.loads((orphan / "result.json").read_text())
    record["parent_run"] = str(tmp_path / "gone")
    (orphan / "result.json").write_text(json.dumps(record))
    out = CliRunner().invoke(main, ["report", str(orphan), "--reports-dir",
                                    str(tmp_path / "reports")])
    assert out.exit_code == 2, out.output
    assert "parent run folder was not found" in out.output and "parent_run" in out.output
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").rglob("*.html"))
