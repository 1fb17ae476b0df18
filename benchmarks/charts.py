"""PNG charts from the results dict (matplotlib, Agg backend): decode tokens/s per contestant, and
aggregate throughput and time to first token against concurrent clients."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHARTS = {
    "decode": "decode-tokens-per-s.png",
    "throughput": "throughput-vs-clients.png",
    "ttft": "ttft-vs-clients.png",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def measured(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The contestants of results.json that ran (skipped and failed ones have no figures)."""
    return [c for c in results["contestants"] if c.get("single")]


def decode_chart(results: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    rows = measured(results)
    labels = [c["label"] for c in rows]
    med = [c["single"]["decode_tps"]["median"] for c in rows]
    low = [m - c["single"]["decode_tps"]["min"] for m, c in zip(med, rows, strict=True)]
    high = [c["single"]["decode_tps"]["max"] - m for m, c in zip(med, rows, strict=True)]
    colors = ["#9e9e9e" if c["kind"] == "pytorch" else "#1f77b4" if c["kind"] != "http" else "#2ca02c" for c in rows]
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(rows) + 1.6))
    ax.barh(labels, med, xerr=[low, high], color=colors, capsize=3)
    top = [m + h for m, h in zip(med, high, strict=True)]
    for y, (value, c) in enumerate(zip(med, rows, strict=True)):
        ratio = (c.get("vs_pytorch") or {}).get("decode_tps")
        text = f"{value:.1f}" + (f"  ({ratio['median']:.1f}x PyTorch)" if ratio else "")
        ax.text(top[y], y, "  " + text, va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("decode tokens/s, one stream (median; bars: min-max)")
    ax.set_xlim(0, max(max(top) * 1.5, 1.0))
    ax.set_title(
        f"Single-stream decode, {results['plan']['new_tokens']} new tokens, {results['plan']['threads']} threads"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def concurrency_chart(results: dict[str, Any], path: Path, metric: str) -> None:
    plt = _pyplot()
    from matplotlib import ticker

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for c in measured(results):
        points = sorted((int(n), f[metric]) for n, f in (c.get("concurrency") or {}).items())
        if not points:
            continue
        xs = [n for n, _ in points]
        scale = 1000.0 if metric.endswith("_s") else 1.0
        med = [s["median"] * scale for _, s in points]
        err = [[m - s["min"] * scale for m, (_, s) in zip(med, points, strict=True)],
               [s["max"] * scale - m for m, (_, s) in zip(med, points, strict=True)]]  # fmt: skip
        ax.errorbar(xs, med, yerr=err, marker="o", capsize=3, label=c["label"])
    base = next((c for c in measured(results) if c["kind"] == "pytorch"), None)
    if metric == "aggregate_tps" and base:
        ax.axhline(base["single"]["decode_tps"]["median"], color="#9e9e9e", linestyle="--", label="PyTorch, one stream")
    ax.set_xscale("log", base=2)
    ax.set_xticks(results["plan"]["clients"], [str(n) for n in results["plan"]["clients"]])
    ax.set_xlabel("concurrent streaming clients")
    if metric == "aggregate_tps":
        ax.set_ylabel("aggregate tokens/s (median; bars: min-max)")
        ax.set_title("Throughput against concurrency")
    else:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_ylabel("time to first token, p50 over clients (ms)")
        ax.set_title("Time to first token against concurrency")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_charts(results: dict[str, Any], folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {key: folder / name for key, name in CHARTS.items()}
    decode_chart(results, paths["decode"])
    concurrency_chart(results, paths["throughput"], "aggregate_tps")
    concurrency_chart(results, paths["ttft"], "ttft_p50_s")
    return paths
