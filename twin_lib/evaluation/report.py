"""One self-contained HTML page of an evaluation: figures, plots (PNG inlined as base64) and
side-by-side answers. Nothing is loaded from elsewhere, so the KFP UI's HTML viewer, a mail
attachment or a browser without network all show the same page."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from twin_lib.evaluation.results import EvaluationResult, ModelFigures, StyleScore

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TWIN_COLOUR, BASE_COLOUR = "#1f77b4", "#aaaaaa"
STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
    "vertical-align:top;text-align:left}th{background:#f3f3f3}.num{text-align:right}"
    ".note{color:#666;font-size:90%}"
)


def _png(figure: Figure) -> str:
    from matplotlib import pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def style_plot(result: EvaluationResult) -> str:
    """Twin and base bars per style measure, the calibrated ceiling and floor as lines."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    calibration = result.calibration
    for axis, measure in zip(axes, ("tfidf", "embedding"), strict=True):
        values = [getattr(f.style, measure) for f in (result.candidate, result.base)]
        axis.bar(["twin", "base"], values, color=[TWIN_COLOUR, BASE_COLOUR])
        axis.axhline(
            getattr(calibration.ceiling, measure), color="green", linestyle="--", label="ceiling"
        )
        axis.axhline(
            getattr(calibration.floor, measure),
            color="red",
            linestyle=":",
            label=f"floor ({calibration.floor_source.replace('_', ' ')})",
        )
        axis.set_title(f"style: {'character n-gram TF-IDF' if measure == 'tfidf' else measure}")
        axis.set_ylabel("cosine to the author's profile")
        axis.legend(loc="lower right")
    figure.tight_layout()
    return _png(figure)


def figures_plot(result: EvaluationResult) -> str:
    """Perplexity, grounding and answer length, twin against base."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    panels = [
        ("held-out perplexity (lower is better)", lambda f: f.perplexity.perplexity),
        ("grounded sentences", lambda f: f.grounding.rate or 0.0),
        ("answer words (mean)", lambda f: f.answers.words_mean),
        ("refusal rate", lambda f: f.answers.refusal_rate),
    ]
    figure, axes = plt.subplots(1, len(panels), figsize=(14, 3.5))
    for axis, (title, value) in zip(axes, panels, strict=True):
        values = [value(result.candidate), value(result.base)]
        axis.bar(["twin", "base"], values, color=[TWIN_COLOUR, BASE_COLOUR])
        axis.set_ylim(0, max(values) * 1.15 or 1.0)
        axis.set_title(title)
    figure.tight_layout()
    return _png(figure)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _style(score: StyleScore) -> str:
    return f"{score.tfidf:.3f} / {score.embedding:.3f}"


def _rows(rows: Sequence[Sequence[str]]) -> str:
    return "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )


def _figures_table(twin: ModelFigures, base: ModelFigures) -> str:
    def row(name: str, get: Callable[[ModelFigures], str]) -> list[str]:
        return [name, get(twin), get(base)]

    rows = [
        row("weights", lambda f: f.weights),
        row("held-out perplexity", lambda f: _fmt(f.perplexity.perplexity, 2)),
        row("held-out tokens", lambda f: str(f.perplexity.tokens)),
        row("style TF-IDF / embedding", lambda f: _style(f.style)),
        row(
            "style position TF-IDF / embedding",
            lambda f: f"{_fmt(f.style_position.tfidf, 2)} / {_fmt(f.style_position.embedding, 2)}",
        ),
        row(
            "grounded sentences",
            lambda f: (
                f"{_fmt(f.grounding.rate, 2)} ({f.grounding.supported}/{f.grounding.sentences})"
            ),
        ),
        row(
            "words mean / p50 / p95",
            lambda f: (
                f"{f.answers.words_mean:.1f} / {f.answers.words_p50:.0f} / "
                f"{f.answers.words_p95:.0f}"
            ),
        ),
        row(
            "tokens mean / p50 / p95",
            lambda f: (
                f"{f.answers.tokens_mean:.1f} / {f.answers.tokens_p50:.0f} / "
                f"{f.answers.tokens_p95:.0f}"
            ),
        ),
        row("refusal rate (empty)", lambda f: f"{f.answers.refusal_rate:.2f} ({f.answers.empty})"),
    ]
    head = f"<tr><th></th><th>twin {html.escape(twin.label)}</th><th>base</th></tr>"
    return f"<table>{head}{_rows(rows)}</table>"


def _judge(result: EvaluationResult) -> str:
    if result.judge is None:
        return "<p class='note'>Pairwise judge: off (evaluation.judge.enabled).</p>"
    judge = result.judge
    rows = [
        [
            name,
            str(v.twin),
            str(v.base),
            f"{v.ties} ({v.inconsistent} inconsistent, {v.invalid} invalid)",
            f"{v.twin_win_rate:.2f}",
        ]
        for name, v in (("style", judge.style), ("accuracy", judge.accuracy))
    ]
    head = "<tr><th></th><th>twin</th><th>base</th><th>ties</th><th>twin win rate</th></tr>"
    return (
        f"<h2>Pairwise judge</h2><p>{html.escape(judge.endpoint)}, {judge.questions} questions, "
        f"both orders, temperature 0.</p><table>{head}{_rows(rows)}</table>"
    )


def _samples(result: EvaluationResult) -> str:
    head = (
        "<tr><th>question</th><th>sources</th><th>the author's own text</th>"
        "<th>base answer</th><th>twin answer</th></tr>"
    )
    rows = "".join(
        "<tr>"
        f"<td>{html.escape(s.question)}</td>"
        "<td>"
        + "<br>".join(html.escape(f"{src.title or src.url} ({src.score:.2f})") for src in s.sources)
        + "</td>"
        f"<td>{html.escape(s.reference)}</td><td>{html.escape(s.base_answer)}</td>"
        f"<td>{html.escape(s.twin_answer)}</td></tr>"
        for s in result.samples
    )
    return f"<h2>Side by side</h2><table>{head}{rows}</table>"


def report_html(result: EvaluationResult) -> str:
    """The whole report as one HTML document."""
    calibration, retrieval = result.calibration, result.retrieval
    title = html.escape(f"Evaluation of {result.label} against its base")
    intro = html.escape(
        f"Author {result.author}, collection {result.collection}, {result.questions} held-out "
        f"questions answered greedily by the same retrieval and prompt; base model "
        f"{result.base_model}."
    )
    calibration_text = html.escape(
        f"Style is the mean cosine to the author's profile (the mean of "
        f"{calibration.profile_texts} training texts of the author), as TF-IDF / embedding: "
        f"ceiling {_style(calibration.ceiling)} (the author's own held-out answers, "
        f"{calibration.ceiling_texts} texts), floor {_style(calibration.floor)} "
        f"({calibration.floor_source.replace('_', ' ')}, {calibration.floor_texts} texts). "
        "Position = (score - floor) / (ceiling - floor)."
    )
    retrieval_text = html.escape(
        f"Retrieval on {retrieval.questions} questions whose source chunk is known: hit@1 "
        f"{retrieval.hit_at_1:.2f}, hit@{retrieval.k} {retrieval.hit_at_k:.2f}, "
        f"MRR {retrieval.mrr:.3f}."
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{STYLE}</style></head><body><h1>{title}</h1><p>{intro}</p>"
        f"<h2>Figures</h2>{_figures_table(result.candidate, result.base)}"
        f"<p>{calibration_text}</p><p>{retrieval_text}</p>"
        f"<img alt='style against ceiling and floor' "
        f"src='data:image/png;base64,{style_plot(result)}'>"
        f"<img alt='perplexity, grounding and length' "
        f"src='data:image/png;base64,{figures_plot(result)}'>"
        f"{_judge(result)}{_samples(result)}</body></html>\n"
    )
