"""Charts drawn on the server as SVG: no script, no external library.

Each chart has a title and a text description for screen readers, writes
its numbers on the marks (colour is never the only cue), and sits beside a
table with the same figures.
"""

from __future__ import annotations

from bisect import bisect_right

from markupsafe import Markup, escape

from .html import duration
from .outcomes import Outcomes

# fate attribute, mark, words, fill (white text on each passes WCAG AA contrast)
FATES = (("confirmed", "✓", "confirmed", "#1a7f37"), ("onward", "→", "moved on", "#4a5866"),
         ("waiting", "…", "waiting", "#9a4d00"), ("ended", "✗", "unreachable", "#b3261e"),
         ("closed", "⊘", "closed", "#5f5f5f"))
LINE_STYLES = (("#0b5cad", ""), ("#1a7f37", "7 4"), ("#9a4d00", "2 3"), ("#6b2fa0", "9 3 2 3"),
               ("#b3261e", "4 2"), ("#4a5866", "1 3"))
REACH_SEGMENTS = (("several", "several channels", "#1a7f37"), ("push", "push only", "#0b5cad"),
                  ("sms", "SMS only", "#6b2fa0"), ("voice", "voice only", "#9a4d00"),
                  ("mail", "mail only", "#4a5866"), ("none", "not at all", "url(#hatch)"))


def _svg(cid: str, width: int, height: int, title: str, desc: str, body: str) -> Markup:
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-labelledby="{cid}-t {cid}-d" '
        f'font-family="system-ui, sans-serif" font-size="12">'
        f'<title id="{cid}-t">{escape(title)}</title><desc id="{cid}-d">{escape(desc)}</desc>{body}</svg>')


def _text(x: float, y: float, words: str, **attrs) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    return f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{escape(words)}</text>'


def flow(out: Outcomes, cid: str = "flow") -> Markup:
    """Columns are plan steps; each box is the residents who reached that step on
    those channels, split by where they went; bands carry the ones who moved on."""
    cols = out.columns
    if not cols:
        return Markup("<p>No resident has started a step yet.</p>")
    node_w, gap_x, top, plot_h, gap_y = 150, 120, 28, 300, 30
    tallest = max(len(c) for c in cols)
    scale = (plot_h - gap_y * (tallest - 1)) / max(sum(s.entered for s in cols[0]), 1)
    nodes, parts, desc = {}, [], []
    for i, col in enumerate(cols):
        x, y = 10 + i * (node_w + gap_x), top
        for stage in col:
            h = max(6.0, stage.entered * scale)
            node = nodes[(stage.step, stage.channels)] = {"x": x, "bottom": y + h, "in": y, "out": y, "out_h": 0.0,
                                                          "stage": stage}
            parts.append(_text(x, y - 8, f"Step {stage.step + 1} · {stage.channels} · {stage.entered}",
                               font_weight="600", fill="#111"))
            sy, said = y, []
            for attr, mark, words, fill in FATES:
                n = getattr(stage, attr)
                if not n:
                    continue
                sh = h * n / stage.entered
                parts.append(f'<rect x="{x}" y="{sy:.1f}" width="{node_w}" height="{sh:.1f}" fill="{fill}"/>')
                if sh >= 15:
                    parts.append(_text(x + 6, sy + sh / 2 + 4, f"{mark} {n} {words}", fill="#fff"))
                if attr == "onward":
                    node["out"], node["out_h"] = sy, sh
                said.append(f"{n} {words}")
                sy += sh
            desc.append(f"Step {stage.step + 1} on {stage.channels}: {stage.entered} reached it, {', '.join(said)}.")
            y += h + gap_y
    for (step, src, dst), n in sorted(out.links.items()):
        a, b = nodes[(step, src)], nodes[(step + 1, dst)]
        band = a["out_h"] * n / a["stage"].onward
        x1, x2, y1, y2 = a["x"] + node_w, b["x"], a["out"], b["in"]
        mid = (x1 + x2) / 2
        parts.insert(0, f'<path d="M{x1},{y1:.1f} C{mid},{y1:.1f} {mid},{y2:.1f} {x2},{y2:.1f} '
                        f'L{x2},{y2 + band:.1f} C{mid},{y2 + band:.1f} {mid},{y1 + band:.1f} {x1},{y1 + band:.1f} Z" '
                        f'fill="#4a5866" fill-opacity="0.3"/>')
        if band >= 14:
            parts.append(_text(mid, (y1 + y2 + band) / 2 + 4, f"→ {n}", text_anchor="middle", fill="#111"))
        a["out"] += band
        b["in"] += band
    height = int(max(n["bottom"] for n in nodes.values())) + 20
    width = 20 + len(cols) * node_w + (len(cols) - 1) * gap_x
    return _svg(cid, width, height, "How residents flowed through the channels", " ".join(desc), "".join(parts))


def confirmation_curve(ttc: dict[str, list[float]], targeted: int, cid: str = "ttc") -> Markup:
    """Share of the targeted residents confirmed over time, one line per confirming channel."""
    everyone = sorted(t for times in ttc.values() for t in times)
    if not everyone or not targeted:
        return Markup("<p>No confirmation yet.</p>")
    left, right, top, bottom, w, h = 56, 150, 16, 40, 520, 240
    xmax = max(60.0, everyone[-1] * 1.05)
    lines = list(ttc.items())
    if len(lines) > 1:
        lines.insert(0, ("all channels", everyone))
    parts = ['<g stroke="#c8c8c8">']
    for pct in (0, 25, 50, 75, 100):
        y = top + h - h * pct / 100
        parts.append(f'<line x1="{left}" x2="{left + w}" y1="{y:.1f}" y2="{y:.1f}"/>')
    parts.append("</g>")
    for pct in (0, 25, 50, 75, 100):
        parts.append(_text(left - 6, top + h - h * pct / 100 + 4, f"{pct}%", text_anchor="end", fill="#111"))
    for j in range(5):
        t = xmax * j / 4
        parts.append(_text(left + w * j / 4, top + h + 18, duration(t), text_anchor="middle", fill="#111"))
    parts.append(_text(left + w / 2, top + h + 36, "time since the alert", text_anchor="middle", fill="#111"))
    label_ys, desc = [], []
    for (name, times), (colour, dash) in zip(lines, LINE_STYLES):
        points = []
        for j in range(201):
            t = xmax * j / 200
            points.append(f"{left + w * j / 200:.1f},{top + h - h * bisect_right(times, t) / targeted:.1f}")
        parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}" stroke-width="2.5"'
                     + (f' stroke-dasharray="{dash}"' if dash else "") + "/>")
        share = 100 * len(times) / targeted
        y = top + h - h * share / 100
        while any(abs(y - other) < 14 for other in label_ys):
            y += 14
        label_ys.append(y)
        parts.append(f'<line x1="{left + w + 6}" x2="{left + w + 30}" y1="{y:.1f}" y2="{y:.1f}" stroke="{colour}" '
                     f'stroke-width="2.5"' + (f' stroke-dasharray="{dash}"' if dash else "") + "/>")
        parts.append(_text(left + w + 34, y + 4, f"{name} {share:.0f}%", fill="#111"))
        desc.append(f"{name}: {share:.0f}% confirmed, half of them within {duration(times[len(times) // 2])}")
    body = "".join(parts)
    return _svg(cid, left + w + right, top + h + bottom + 6, "Time to confirmation", "; ".join(desc) + ".", body)


def reach_bars(rows: list[dict], cid: str = "reach") -> Markup:
    """Per district, a full-width bar split by how residents can be reached."""
    if not rows:
        return Markup("<p>No residents in the registry.</p>")
    label_w, bar_w, row_h, top = 110, 560, 30, 10
    parts = ['<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
             'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff"/>'
             '<line x1="0" y1="0" x2="0" y2="6" stroke="#b3261e" stroke-width="3"/></pattern></defs>']
    desc = []
    for i, row in enumerate(rows):
        y = top + i * row_h
        total = max(row["residents"], 1)
        parts.append(_text(label_w - 8, y + 17, row["district"], text_anchor="end", fill="#111"))
        x, said = float(label_w), []
        for key, words, fill in REACH_SEGMENTS:
            n = row["counts"][key]
            if not n:
                continue
            sw = bar_w * n / total
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{sw:.1f}" height="{row_h - 6}" fill="{fill}" '
                         f'stroke="#fff"/>')
            if sw >= 38:
                # On the hatching, dark text on a white halo stays readable.
                style = ('fill="#111" font-weight="700" stroke="#fff" stroke-width="4" paint-order="stroke"'
                         if key == "none" else 'fill="#fff"')
                parts.append(f'<text x="{x + sw / 2:.1f}" y="{y + 17}" text-anchor="middle" {style}>'
                             f'{100 * n / total:.0f}%</text>')
            said.append(f"{100 * n / total:.0f}% {words}")
            x += sw
        desc.append(f"District {row['district']}: {', '.join(said)}.")
    legend_y = top + len(rows) * row_h + 12
    x = float(label_w)
    for key, words, fill in REACH_SEGMENTS:
        parts.append(f'<rect x="{x:.1f}" y="{legend_y}" width="14" height="14" fill="{fill}" stroke="#111"/>')
        parts.append(_text(x + 18, legend_y + 12, words, fill="#111"))
        x += 30 + 7 * len(words)
    height = legend_y + 26
    return _svg(cid, int(max(label_w + bar_w + 10, x)), height, "How residents can be reached, by district",
                " ".join(desc), "".join(parts))
