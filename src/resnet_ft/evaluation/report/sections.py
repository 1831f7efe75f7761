"""The report's tables: per class, data findings, config and versions, unreadable files."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from resnet_ft.evaluation.report.doctor import Findings
from resnet_ft.evaluation.report.gather import RunInfo


def per_class_section(report: dict[str, Any]) -> str:
    """Precision, recall, F1 and support per class; headers sort (script)."""
    columns = ("precision", "recall", "f1", "support")
    head = '<th data-sort="text">class</th>' + "".join(
        f'<th data-sort="num">{"F1" if c == "f1" else c}</th>' for c in columns)
    rows = []
    for name, row in report["per_class"].items():
        cells = [f'<td data-value="{escape(name)}">{escape(name)}</td>']
        for column in columns[:3]:
            value = row[column]
            cells.append(f'<td data-value="{value!r}" class="num"><span class="bar" '
                         f'style="--w:{100 * value:.1f}%"></span>{value:.3f}</td>')
        cells.append(f'<td data-value="{row["support"]}" class="num">{row["support"]}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"""<section id="per-class"><h2>Per class</h2>
<p class="explain">Precision: of the images predicted as the class, the share right. Recall: of
the class's images, the share found. <b>Click a header to sort.</b></p>
<table class="sortable perclass"><thead><tr>{head}</tr></thead>
<tbody>{"".join(rows)}</tbody></table></section>"""


#: Rows of a kind of finding shown before the rest fold away under "show more".
FINDINGS_SHOWN = 10


def doctor_section(findings: list[Findings], files: dict[str, Path],
                   thumbs: dict[Path, str]) -> str:
    """One table per kind of finding; the files of a row side by side as thumbnails."""
    parts = []
    for kind in findings:
        head = "<th>files</th>" + "".join(f"<th>{escape(c)}</th>" for c in kind.other_columns)
        rows = []
        for row in kind.rows:
            named = [(c, row.get(c) or "") for c in kind.file_columns if row.get(c)]
            pictures = "".join(_finding_file(column, value, files, thumbs)
                               for column, value in named)
            cells = "".join(f"<td>{escape(row.get(c) or '')}</td>" for c in kind.other_columns)
            rows.append(f'<tr><td class="files">{pictures}</td>{cells}</tr>')
        table = (f'<table class="findings"><thead><tr>{head}</tr></thead>'
                 f'<tbody>{"".join(rows[:FINDINGS_SHOWN])}</tbody></table>')
        if len(rows) > FINDINGS_SHOWN:
            table += (f"<details><summary>show {len(rows) - FINDINGS_SHOWN} more</summary>"
                      f'<table class="findings"><thead><tr>{head}</tr></thead>'
                      f'<tbody>{"".join(rows[FINDINGS_SHOWN:])}</tbody></table></details>')
        more = (f'<p class="explain">… and {kind.total - len(kind.rows)} more in '
                f"{escape(str(kind.csv))}</p>" if kind.total > len(kind.rows) else "")
        body = table + more if kind.rows else '<p class="explain">None found.</p>'
        parts.append(f'<div class="finding-kind" data-kind="{escape(kind.csv.stem)}">'
                     f'<h3>{escape(kind.title)} <span class="count">{kind.total}</span></h3>'
                     f"{body}</div>")
    source = escape(str(findings[0].csv.parent))
    return f"""<section id="findings"><h2>Data findings</h2>
<p class="explain">What <code>resnet-ft doctor</code> found in the data ({source}): fix these
before trusting the numbers above.</p>{"".join(parts)}</section>"""


def _finding_file(column: str, value: str, files: dict[str, Path],
                  thumbs: dict[Path, str]) -> str:
    path = files.get(value, Path(value))
    thumb = thumbs.get(path)
    picture = (f'<img src="{thumb}" alt="{escape(path.name)}">' if thumb else
               f'<div class="noimg">{"missing" if not path.exists() else "unreadable"}</div>')
    return (f'<figure class="finding-file" data-file="{escape(value)}" '
            f'data-column="{escape(column)}">{picture}<figcaption title="{escape(str(path))}">'
            f"{escape(path.name)}</figcaption></figure>")


def config_section(run: RunInfo) -> str:
    """The run's resolved config and the software versions, as two key/value tables."""
    config = "".join(f"<div><dt>{escape(str(k))}</dt><dd>{escape(_text(v))}</dd></div>"
                     for k, v in run.config.items())
    versions = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>"
                       for k, v in run.versions.items())
    return f"""<section id="config"><h2>Config &amp; versions</h2><div class="columns">
<div class="wide"><h3>Run config <small>(config.yaml)</small></h3><dl class="kvs">{config}</dl>
</div>
<div><h3>Software</h3><table class="kv">{versions}</table></div></div></section>"""


def coverage_section(report: dict[str, Any], figures: dict[str, str]) -> str:
    """Accuracy against coverage: what answering "unknown" for unfamiliar images buys."""
    if "coverage" not in figures:
        return ""
    rows = "".join(f'<tr><td class="num">{100 * row["coverage"]:.0f} %</td>'
                   f'<td class="num">{row["accuracy"]:.3f}</td></tr>'
                   for row in report["risk_coverage"]["table"])
    return f"""<section id="coverage"><h2>Accuracy against coverage</h2>
<div class="side"><img class="figure" src="{figures['coverage']}" alt="accuracy against
coverage"><div><p class="explain">Images ordered by the run's reject score, most familiar
first: answering only the first share of them (coverage) gives this accuracy. A curve above
the dashed line means the score puts mistakes last; <code>predict --reject</code> answers
"unknown" beyond the dot.</p><table class="kv"><thead><tr><th>coverage</th><th>accuracy</th>
</tr></thead><tbody>{rows}</tbody></table></div></div></section>"""


def skipped_section(skipped: dict[str, str]) -> str:
    """Files of the evaluated set that could not be decoded, and why."""
    if not skipped:
        return ""
    items = "".join(f"<li><code>{escape(path)}</code>: {escape(reason)}</li>"
                    for path, reason in skipped.items())
    return f"""<section id="skipped"><h2>Unreadable files</h2><details><summary>
{len(skipped)} file(s) could not be decoded and are not counted</summary><ul>{items}</ul>
</details></section>"""


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "(none)"
    return "(not set)" if value is None else str(value)
