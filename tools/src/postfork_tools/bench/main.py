"""``postfork bench`` from options to outputs: run the suite under a progress bar, then print the
tables and write the JSON and the plot."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from postfork_tools.bench import report as reporting
from postfork_tools.bench.scenarios import select
from postfork_tools.bench.suite import BenchOptions, Suite


def run_bench(
    options: BenchOptions, json_path: Path | None, plot_path: Path | None, console: Console
) -> int:
    """Exit status 0 when the run completed (missed targets are reported, not an error)."""
    scenarios = select(list(options.scenario_names) or None, asgi=options.asgi)
    planned = options.planned_seconds(len(scenarios))
    progress = Progress(
        TextColumn("{task.description:<40}"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("left ~"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    with progress:
        task = progress.add_task("starting", total=planned)

        def tick(what: str, done: float) -> None:
            progress.update(task, description=what, completed=min(done, planned))

        suite = Suite(options, scenarios, tick)
        result = suite.run()
    result["targets"] = reporting.targets(result) + reporting.orm_targets(result)
    result["warnings"] = reporting.warnings(result)
    reporting.print_report(result, console)
    if json_path is not None:
        reporting.write_json(result, json_path)
        console.print(f"JSON: {json_path}")
    if plot_path is not None:
        title = (
            f"postfork bench: {options.server}, {options.processes} processes, "
            f"max-requests {options.max_requests}, {options.db_delay_ms} ms proxy"
        )
        reporting.plot(suite.curves, title, plot_path)
        console.print(f"plot: {plot_path}")
    return 0
