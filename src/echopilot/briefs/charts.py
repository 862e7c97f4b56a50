"""PNG charts for the daily CEO brief, drawn with Pillow.

PNG rather than SVG: most email clients (Gmail, Outlook) block or strip SVG, and the brief
goes out by email with its charts inline (cid:) as well as into a self-contained HTML file
(data: URIs); a raster image looks the same everywhere. Charts are drawn at twice the size
they are shown (1120x560 for 560x280) so they stay sharp on dense screens and in print.

Charts are drawn straight into a palette image, every colour an exact palette entry and
text smoothed through a short ramp of tints, rather than in RGB: Pillow filters RGB rows
adaptively before compressing, which took two thirds of a chart's time, and a palette PNG
is also about half the size, which matters for an email carrying several charts.

The same input gives the same bytes (no metadata, fixed compression, the font that ships
inside Pillow rather than whatever the machine has), so a brief can be compared or cached
by its content. That font covers ASCII only: accents are folded away ("café" is drawn
"cafe") rather than shown as missing-glyph boxes; other scripts still come out as boxes.
"""

from __future__ import annotations

import io
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageColor, ImageDraw, ImageFont

__all__ = ["Line", "bar_chart", "line_chart"]

_WIDTH = 1120
_HEIGHT = 560
_SIDE = 24  # outer margin left and right
_ROW = 76  # middle of the row under the title: y label on the left, legend on the right
_PLOT_TOP = 120  # leaves room above the tallest bar for its value
_X_LABELS = 56  # room under the plot for horizontal x labels

_WHITE = "#ffffff"
_INK = "#222222"
_MUTED = "#666666"
_GRID = "#e6e6e6"
_AXIS = "#9a9a9a"
_REFERENCE = "#444444"
_RED = "#d62728"

_LINE_WIDTH = 4
_DOT = 6  # radius of a point drawn on its own
_RING = 14  # radius of the anomaly ring
_DOTS_UP_TO = 31  # days: on longer series a dot per day would be clutter
_LABEL_CHARS = 14
_ROTATION = 35  # degrees, for bar labels too wide to sit side by side
_TINTS = 16  # shades between white and a text colour for smooth glyph edges
_FAINTEST = 24  # glyph coverage (of 255) below which a pixel is left as it was


@dataclass(frozen=True)
class Line:
    """One series of a line chart: a value per day, None where that day had no data."""

    name: str
    values: list[float | None]
    colour: str  # "#rrggbb"; avoid red, which marks anomalies


@dataclass(frozen=True)
class _Fonts:
    title: ImageFont.FreeTypeFont
    label: ImageFont.FreeTypeFont
    small: ImageFont.FreeTypeFont
    notice: ImageFont.FreeTypeFont


def _font(size: int) -> ImageFont.FreeTypeFont:
    font = ImageFont.load_default(size=size)
    if not isinstance(font, ImageFont.FreeTypeFont):
        raise RuntimeError("this Pillow was built without FreeType, which the charts need")
    return font


def _fonts() -> _Fonts:
    # Loaded per chart (well under a millisecond) rather than cached in the module, so no
    # FreeType face is ever shared between threads rendering briefs at once.
    return _Fonts(title=_font(30), label=_font(21), small=_font(19), notice=_font(34))


class _Canvas:
    """A palette image that hands out one entry per colour, in the order first used.

    Text goes first into a greyscale coverage layer per text colour (Pillow smooths glyphs
    only in greyscale or RGB) and is laid over the chart as tints of that colour at the end.
    """

    def __init__(self) -> None:
        self.image = Image.new("P", (_WIDTH, _HEIGHT), 0)
        self.draw = ImageDraw.Draw(self.image)
        self._entries: dict[tuple[int, int, int], int] = {}
        self.ink(_WHITE)  # entry 0, the background
        self._layers: dict[str, Image.Image] = {}

    def ink(self, colour: str | tuple[int, int, int]) -> int:
        rgb = colour if isinstance(colour, tuple) else _rgb(colour)
        entry = self._entries.get(rgb)
        if entry is None:
            if len(self._entries) == 256:
                raise ValueError("a chart can use at most about 200 different colours")
            entry = self._entries[rgb] = len(self._entries)
        return entry

    def layer(self, colour: str) -> Image.Image:
        layer = self._layers.get(colour)
        if layer is None:
            layer = self._layers[colour] = Image.new("L", (_WIDTH, _HEIGHT), 0)
        return layer

    def text(
        self,
        xy: tuple[float, float],
        text: str,
        font: ImageFont.FreeTypeFont,
        colour: str,
        anchor: str = "la",
    ) -> None:
        ImageDraw.Draw(self.layer(colour)).text(xy, text, font=font, fill=255, anchor=anchor)

    def png(self) -> bytes:
        for colour, layer in self._layers.items():
            self._lay(layer, colour)
        self.image.putpalette([c for rgb in self._entries for c in rgb])
        buffer = io.BytesIO()
        # Fixed settings and no metadata chunks: equal input must give equal bytes. Level 3
        # rather than 6 saves a few milliseconds for about a third more bytes (~17 kB).
        self.image.save(buffer, format="PNG", optimize=False, compress_level=3)
        return buffer.getvalue()

    def _lay(self, layer: Image.Image, colour: str) -> None:
        box = layer.getbbox()
        if box is None:
            return
        coverage = layer.crop(box)
        red, green, blue = _rgb(colour)
        tints = []
        for level in range(1, _TINTS + 1):
            share = level / _TINTS  # the blend a glyph edge this covered makes on white
            tints.append(self.ink((_mix(red, share), _mix(green, share), _mix(blue, share))))
        table = bytes(tints[a * _TINTS // 256] for a in range(256))
        shades = Image.frombytes("P", coverage.size, coverage.tobytes().translate(table))
        visible = [0] * _FAINTEST + [255] * (256 - _FAINTEST)
        # A "1" mask copies entries as they are: a greyscale mask would average entry numbers.
        self.image.paste(shades, box[:2], coverage.point(visible, "1"))


@dataclass(frozen=True)
class _Plot:
    left: int
    top: int
    right: int
    bottom: int
    lo: float
    hi: float

    def y(self, value: float) -> float:
        return self.bottom - (value - self.lo) / (self.hi - self.lo) * (self.bottom - self.top)


def line_chart(
    title: str,
    days: list[str],
    lines: list[Line],
    *,
    y_label: str,
    marked: Sequence[int] = (),
    reference: float | None = None,
    reference_label: str | None = None,
) -> bytes:
    """A PNG line chart over `days` (ISO dates, oldest first); `marked` are indexes of days
    to highlight (anomalies: a red ring on each line's point that day); `reference` draws a
    dashed horizontal line (a target such as QA 85 or margin 40) labelled `reference_label`."""
    count = len(days)
    for line in lines:
        if len(line.values) != count:
            raise ValueError(f"line {line.name!r} has {len(line.values)} values for {count} days")
    _check_indexes("marked", marked, count)
    series = [[_finite(v) for v in line.values] for line in lines]
    present = [v for values in series for v in values if v is not None]
    if not present:
        return _no_data(title, y_label)
    target = _finite(reference)
    lo, hi = _line_range([*present, *([] if target is None else [target])])
    ticks = _ticks(lo, hi)

    fonts = _fonts()
    canvas = _Canvas()
    legend = [(line.name, line.colour, False) for line in lines] if len(lines) > 1 else []
    _heading(canvas, title, y_label, fonts, legend)
    plot = _axes(canvas, ticks, fonts, _HEIGHT - _X_LABELS, _left_margin(ticks, fonts))
    draw = canvas.draw

    inset = 16  # keeps the first and last points off the plot's edges
    span = plot.right - plot.left - 2 * inset

    def x_of(index: int) -> float:
        if count == 1:
            return (plot.left + plot.right) / 2
        return plot.left + inset + index * span / (count - 1)

    for index in _spread(count, 6):
        x = x_of(index)
        draw.line([(x, plot.bottom), (x, plot.bottom + 8)], fill=canvas.ink(_AXIS), width=2)
        text = _day_label(days[index])
        width = fonts.small.getlength(text)
        # Clamped so the first and last dates are never cut at the image's edges.
        left = min(max(x - width / 2, _SIDE), _WIDTH - _SIDE - width)
        canvas.text((left, plot.bottom + 14), text, fonts.small, _MUTED)

    if target is not None:
        _reference(canvas, plot, target, reference_label, fonts)

    for line, values in zip(lines, series, strict=True):
        ink = canvas.ink(line.colour)
        for run in _runs(values):
            points = [(x_of(i), plot.y(v)) for i, v in run]
            if len(points) > 1:
                draw.line(points, fill=ink, width=_LINE_WIDTH, joint="curve")
            if len(points) == 1 or count <= _DOTS_UP_TO:
                for x, y in points:
                    draw.ellipse([x - _DOT, y - _DOT, x + _DOT, y + _DOT], fill=ink)

    red = canvas.ink(_RED)
    for index in sorted(set(marked)):
        for values in series:
            value = values[index]
            if value is not None:
                x, y = x_of(index), plot.y(value)
                draw.ellipse([x - _RING, y - _RING, x + _RING, y + _RING], outline=red, width=4)
    return canvas.png()


def bar_chart(
    title: str,
    categories: list[str],
    values: list[float],
    *,
    y_label: str,
    colour: str,
    reference: float | None = None,
    reference_label: str | None = None,
    highlight: Sequence[int] = (),
) -> bytes:
    """A PNG bar chart (e.g. average QA per task type); `highlight` bars drawn in red."""
    count = len(categories)
    if len(values) != count:
        raise ValueError(f"{len(values)} values for {count} categories")
    _check_indexes("highlight", highlight, count)
    heights = [_finite(v) for v in values]
    present = [v for v in heights if v is not None]
    if not present:
        return _no_data(title, y_label)
    target = _finite(reference)
    extremes = [0.0, *present, *([] if target is None else [target])]
    lo, hi = min(extremes), max(extremes)
    if lo == hi:  # every bar is zero
        hi = 1.0
    if lo < 0:
        # Room under the deepest bar for its value label, which would otherwise sit on the
        # category names; above the tallest bar the space under the title serves instead.
        lo -= 0.08 * (hi - lo)
    ticks = _ticks(lo, hi)

    fonts = _fonts()
    canvas = _Canvas()
    # On bars the reference's name goes in the legend: by the line it would sit on a bar.
    legend = [(reference_label, _REFERENCE, True)] if target is not None and reference_label else []
    _heading(canvas, title, y_label, fonts, legend)
    labels = [_shorten(_fold(name), _LABEL_CHARS) for name in categories]
    widest = max(fonts.small.getlength(text) for text in labels)
    line_height = _text_height(fonts.small)
    left = _left_margin(ticks, fonts)
    slot = (_WIDTH - _SIDE - left) / count
    upright = widest <= slot - 8
    every = 1
    bottom = _HEIGHT - _X_LABELS
    if not upright:
        angle = math.radians(_ROTATION)
        # A slanted name ends under its bar and reaches left: the first one needs room.
        reach = widest * math.cos(angle) + line_height * math.sin(angle)
        left = max(left, math.ceil(_SIDE + reach - slot / 2))
        slot = (_WIDTH - _SIDE - left) / count
        bottom = _HEIGHT - math.ceil(widest * math.sin(angle) + line_height) - 24
        # Slanted names still collide when the bars are narrower than a line of text.
        every = max(1, math.ceil(line_height * 1.6 / slot))
    plot = _axes(canvas, ticks, fonts, bottom, left)

    bar_width = max(2.0, slot * 0.64)
    decimals = _decimals(present)
    plain, red = canvas.ink(colour), canvas.ink(_RED)
    marked = set(highlight)
    for index, (text, value) in enumerate(zip(labels, heights, strict=True)):
        centre = plot.left + slot * (index + 0.5)
        if index % every == 0:
            if upright:
                canvas.text((centre, plot.bottom + 12), text, fonts.small, _MUTED, "ma")
            else:
                _slanted(canvas, text, fonts.small, round(centre + 4), plot.bottom + 8)
        if value is None:
            continue
        top, base = plot.y(max(value, 0.0)), plot.y(min(value, 0.0))
        fill = red if index in marked else plain
        canvas.draw.rectangle(
            [centre - bar_width / 2, top, centre + bar_width / 2, base], fill=fill
        )
        shown = f"{value:,.{decimals}f}"
        if fonts.small.getlength(shown) <= slot - 6:
            if value >= 0:
                canvas.text((centre, top - 6), shown, fonts.small, _INK, "md")
            else:
                canvas.text((centre, base + 6), shown, fonts.small, _INK, "ma")

    if target is not None:
        _reference(canvas, plot, target, None, fonts)
    return canvas.png()


def _rgb(colour: str) -> tuple[int, int, int]:
    red, green, blue = ImageColor.getrgb(colour)[:3]
    return red, green, blue


def _mix(channel: int, share: float) -> int:
    """`share` of the way from white to `channel`."""
    return round(255 + (channel - 255) * share)


def _check_indexes(what: str, indexes: Sequence[int], count: int) -> None:
    for index in indexes:
        if not 0 <= index < count:
            raise ValueError(f"{what} index {index} is outside 0..{count - 1}")


def _finite(value: float | None) -> float | None:
    # NaN or infinity from a division upstream is "no data", not a point off the chart.
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _runs(values: list[float | None]) -> list[list[tuple[int, float]]]:
    """Consecutive days with values: a None ends a run, so a gap is never drawn as zero."""
    runs: list[list[tuple[int, float]]] = []
    current: list[tuple[int, float]] = []
    for index, value in enumerate(values):
        if value is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append((index, value))
    if current:
        runs.append(current)
    return runs


def _line_range(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if hi > lo:
        # No padding: rounding out to the ticks already leaves room, and padding first
        # would turn a QA axis of 0..100 into 0..150.
        return lo, hi
    # A flat series gets a band around it, but no sign the data never had.
    pad = abs(hi) * 0.1 or 1.0
    below, above = lo - pad, hi + pad
    if lo >= 0 > below:
        below = 0.0
    if hi <= 0 < above:
        above = 0.0  # an all-zero series ends up 0..0, which _ticks widens to 0..1
    return below, above


def _ticks(lo: float, hi: float) -> list[float]:
    """4 to 6 round ticks (1, 2 or 5 times a power of ten apart) covering lo..hi."""
    if hi <= lo:
        hi = lo + 1.0
    power = math.floor(math.log10((hi - lo) / 5))
    steps = sorted(m * 10.0**p for p in (power - 1, power, power + 1) for m in (1, 2, 5))
    for step in steps:
        first = math.floor(lo / step + 1e-9)
        last = math.ceil(hi / step - 1e-9)
        if 4 <= last - first + 1 <= 6:
            return [i * step for i in range(first, last + 1)]
        if last - first + 1 < 4:
            # One step gave 7+ ticks and the next 3: one more round tick beats a crowded axis.
            # It goes on the side away from zero, so an all-positive axis still starts at 0.
            if hi <= 0:
                first -= 1
            else:
                last += 1
            return [i * step for i in range(first, last + 1)]
    return [lo, hi]  # not reached: the largest step always gives 3 ticks or fewer


def _tick_text(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if abs(value) < step / 2:
        value = 0.0  # never "-0"
    return f"{value:,.{decimals}f}"


def _decimals(values: list[float]) -> int:
    """One precision for every bar's label, so 46.9 and 496 do not look unlike in kind."""
    largest = max(abs(v) for v in values)
    if largest >= 100 or all(v == int(v) for v in values):
        return 0
    return 1 if largest >= 1 else 2


def _fold(text: str) -> str:
    # Line breaks and tabs from a stored name would break a one-line label: spaces instead.
    decomposed = unicodedata.normalize("NFKD", " ".join(text.split()))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"


def _fit(text: str, font: ImageFont.FreeTypeFont, width: float) -> str:
    text = _fold(text)
    if font.getlength(text) <= width:
        return text
    fits, too_long = 1, len(text)  # in characters, ellipsis included
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if font.getlength(_shorten(text, middle)) <= width:
            fits = middle
        else:
            too_long = middle
    return _shorten(text, fits)


def _text_height(font: ImageFont.FreeTypeFont) -> int:
    box = font.getbbox("Ag")
    return math.ceil(box[3] - box[1])


def _day_label(day: str) -> str:
    if len(day) >= 10 and day[4] == "-" and day[7] == "-":
        return day[5:10]
    return _shorten(_fold(day), 10)


def _spread(count: int, wanted: int) -> list[int]:
    if count <= wanted:
        return list(range(count))
    return sorted({round(k * (count - 1) / (wanted - 1)) for k in range(wanted)})


def _heading(
    canvas: _Canvas, title: str, y_label: str, fonts: _Fonts, legend: list[tuple[str, str, bool]]
) -> None:
    """The title, and under it the y label on the left and the legend on the right."""
    canvas.text((_SIDE, 18), _fit(title, fonts.title, _WIDTH - 2 * _SIDE), fonts.title, _INK)
    right = _WIDTH - _SIDE
    swatch, gap = 30, 10
    for name, colour, dashed in reversed(legend):
        text = _fit(name, fonts.label, 220)
        canvas.text((right, _ROW), text, fonts.label, _INK, "rm")
        start = right - fonts.label.getlength(text) - gap - swatch
        ink = canvas.ink(colour)
        if dashed:
            canvas.draw.line([(start, _ROW), (start + 11, _ROW)], fill=ink, width=3)
            canvas.draw.line([(start + 19, _ROW), (start + swatch, _ROW)], fill=ink, width=3)
        else:
            canvas.draw.line([(start, _ROW), (start + swatch, _ROW)], fill=ink, width=6)
        right = round(start - 28)
    label = _fit(y_label, fonts.label, max(right - _SIDE - 20, 40))
    canvas.text((_SIDE, _ROW), label, fonts.label, _MUTED, "lm")


def _left_margin(ticks: list[float], fonts: _Fonts) -> int:
    step = ticks[1] - ticks[0]
    widest = max(fonts.small.getlength(_tick_text(t, step)) for t in ticks)
    return _SIDE + math.ceil(widest) + 14


def _axes(canvas: _Canvas, ticks: list[float], fonts: _Fonts, bottom: int, left: int) -> _Plot:
    plot = _Plot(left, _PLOT_TOP, _WIDTH - _SIDE, bottom, ticks[0], ticks[-1])
    step = ticks[1] - ticks[0]
    grid, axis = canvas.ink(_GRID), canvas.ink(_AXIS)
    for tick in ticks:
        y = plot.y(tick)
        # Zero and the floor of the plot are the lines values are read against: darker.
        strong = abs(tick) < step / 2 or tick == ticks[0]
        canvas.draw.line([(plot.left, y), (plot.right, y)], fill=axis if strong else grid, width=2)
        canvas.text((plot.left - 12, y), _tick_text(tick, step), fonts.small, _MUTED, "rm")
    return plot


def _reference(
    canvas: _Canvas, plot: _Plot, value: float, label: str | None, fonts: _Fonts
) -> None:
    y = plot.y(value)
    ink = canvas.ink(_REFERENCE)
    dash, space = 16, 12
    x = plot.left
    while x < plot.right:
        canvas.draw.line([(x, y), (min(x + dash, plot.right), y)], fill=ink, width=3)
        x += dash + space
    if not label:
        return
    text = _fit(label, fonts.small, (plot.right - plot.left) / 2)
    if y - 6 - _text_height(fonts.small) >= plot.top:
        canvas.text((plot.right - 4, y - 6), text, fonts.small, _REFERENCE, "rd")
    else:
        canvas.text((plot.right - 4, y + 6), text, fonts.small, _REFERENCE, "ra")


def _slanted(
    canvas: _Canvas, text: str, font: ImageFont.FreeTypeFont, end_x: int, top: int
) -> None:
    """Draw `text` slanted up to the right, ending at `end_x`, its top edge at `top`."""
    box = font.getbbox(text)
    strip = Image.new("L", (math.ceil(box[2]) + 4, _text_height(font) + 8), 0)
    ImageDraw.Draw(strip).text((2, 2 - box[1]), text, font=font, fill=255)
    coverage = strip.rotate(_ROTATION, resample=Image.Resampling.BICUBIC, expand=True)
    layer = canvas.layer(_MUTED)
    corner = (end_x - coverage.width, top)
    # Neighbouring names' boxes overlap: keep the stronger coverage rather than overwrite.
    under = layer.crop((*corner, corner[0] + coverage.width, corner[1] + coverage.height))
    layer.paste(ImageChops.lighter(under, coverage), corner)


def _no_data(title: str, y_label: str) -> bytes:
    fonts = _fonts()
    canvas = _Canvas()
    _heading(canvas, title, y_label, fonts, [])
    middle = (_WIDTH / 2, (_PLOT_TOP + _HEIGHT) / 2)
    canvas.text(middle, "No data yet", fonts.notice, _MUTED, "mm")
    return canvas.png()
