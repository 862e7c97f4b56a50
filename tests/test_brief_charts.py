"""The brief's PNG charts, decoded with Pillow and checked for what a reader would see."""

from __future__ import annotations

import io
import math
import struct
from datetime import date, timedelta

import pytest
from PIL import Image, ImageChops, ImageColor

from echopilot.briefs.charts import Line, _ticks, bar_chart, line_chart

BLUE = "#1f77b4"
ORANGE = "#ff7f0e"
GREEN = "#2ca02c"
WIDTH, HEIGHT = 1120, 560


def days(count: int) -> list[str]:
    return [(date(2025, 3, 1) + timedelta(days=i)).isoformat() for i in range(count)]


def decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return image.convert("RGB")


def mask(png: bytes, red: range, green: range, blue: range) -> Image.Image:
    """White where a pixel's channels all fall in the given ranges, black elsewhere."""
    channels = decode(png).split()
    parts = [
        channel.point([255 if v in wanted else 0 for v in range(256)])
        for channel, wanted in zip(channels, (red, green, blue), strict=True)
    ]
    return ImageChops.darker(ImageChops.darker(parts[0], parts[1]), parts[2])


def colour_mask(png: bytes, colour: str) -> Image.Image:
    r, g, b = ImageColor.getrgb(colour)[:3]
    return mask(png, range(r, r + 1), range(g, g + 1), range(b, b + 1))


def red_mask(png: bytes) -> Image.Image:
    return mask(png, range(180, 256), range(0, 91), range(0, 91))


def count(image: Image.Image) -> int:
    return image.histogram()[255]


def full_width_rows(png: bytes, colour: str) -> list[int]:
    """Rows where `colour` runs across most of the image: grid lines and axes."""
    found = colour_mask(png, colour)
    return [
        y
        for y in range(HEIGHT)
        if count(found.crop((0, y, WIDTH, y + 1))) > WIDTH * 0.7  # dashed lines fall short
    ]


def test_a_line_chart_is_a_png_of_the_promised_size_on_white() -> None:
    png = line_chart("QA", days(7), [Line("QA", [80, 82, 85, 84, 90, 88, 86], BLUE)], y_label="QA")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = decode(png)
    assert image.size == (WIDTH, HEIGHT)
    assert image.getpixel((2, 2)) == (255, 255, 255)
    assert image.getpixel((WIDTH - 3, HEIGHT - 3)) == (255, 255, 255)


def test_each_line_is_drawn_in_its_exact_colour_inside_the_plot() -> None:
    lines = [
        Line("Revenue", [100.0 + i for i in range(40)], BLUE),
        Line("Cost", [60.0 + i % 3 for i in range(40)], ORANGE),
    ]
    png = line_chart("Money", days(40), lines, y_label="USD")
    for colour in (BLUE, ORANGE):
        below_heading = colour_mask(png, colour).crop((0, 120, WIDTH, HEIGHT))
        assert count(below_heading) > 500, colour  # a line, not only its legend swatch
    # Revenue sits above cost: its pixels start higher up.
    blue_box = colour_mask(png, BLUE).crop((0, 120, WIDTH, HEIGHT)).getbbox()
    orange_box = colour_mask(png, ORANGE).crop((0, 120, WIDTH, HEIGHT)).getbbox()
    assert blue_box is not None and orange_box is not None
    assert blue_box[3] < orange_box[1]


def test_a_marked_day_gets_a_red_ring_around_that_days_point() -> None:
    values: list[float | None] = [50.0 + (i % 4) for i in range(30)]
    values[12] = 95.0  # the anomaly: the highest point, easy to find
    plain = line_chart("QA", days(30), [Line("QA", values, BLUE)], y_label="QA")
    marked = line_chart("QA", days(30), [Line("QA", values, BLUE)], y_label="QA", marked=[12])

    assert count(red_mask(plain)) == 0
    rings = red_mask(marked)
    assert count(rings) > 50
    ring_box = rings.getbbox()
    assert ring_box is not None
    ring_x, ring_y = (ring_box[0] + ring_box[2]) / 2, (ring_box[1] + ring_box[3]) / 2
    assert ring_box[2] - ring_box[0] < 60 and ring_box[3] - ring_box[1] < 60  # one ring

    line = colour_mask(plain, BLUE)
    line_box = line.getbbox()
    assert line_box is not None
    peak_row = line.crop((0, line_box[1], WIDTH, line_box[1] + 1)).getbbox()
    assert peak_row is not None
    peak_x = (peak_row[0] + peak_row[2]) / 2
    assert abs(ring_x - peak_x) <= 4
    assert line_box[1] < ring_y < line_box[1] + 20


def test_marking_a_day_rings_every_line_that_has_a_value_that_day() -> None:
    lines = [
        Line("a", [10.0, 20.0, 30.0], BLUE),
        Line("b", [40.0, 50.0, None], ORANGE),
    ]
    one = count(red_mask(line_chart("x", days(3), lines, y_label="y", marked=[1])))
    gap = count(red_mask(line_chart("x", days(3), lines, y_label="y", marked=[2])))
    assert one > 0 and gap > 0
    assert one == pytest.approx(2 * gap, rel=0.1)  # two rings on day 1, one on day 2


def test_a_day_without_data_is_a_gap_not_a_drop_to_zero() -> None:
    count_days = 41
    full: list[float | None] = [60.0 + (i % 5) for i in range(count_days)]
    holed = list(full)
    holed[20] = None
    whole = colour_mask(
        line_chart("QA", days(count_days), [Line("QA", full, BLUE)], y_label="QA"), BLUE
    )
    gap = colour_mask(
        line_chart("QA", days(count_days), [Line("QA", holed, BLUE)], y_label="QA"), BLUE
    )

    box = whole.getbbox()
    assert box is not None
    left, right = box[0], box[2]
    step = (right - left) / (count_days - 1)
    day_19, day_21 = left + 19 * step, left + 21 * step
    between = (math.ceil(day_19 + 4), 0, math.floor(day_21 - 4), HEIGHT)
    assert count(whole.crop(between)) > 0  # the whole line does cross there
    assert count(gap.crop(between)) == 0  # the holed one does not

    # Nothing is pulled down towards zero: the gap's lowest pixel is no lower than before.
    gap_box = gap.getbbox()
    assert gap_box is not None and gap_box[3] <= box[3]


def test_a_day_with_data_between_two_missing_days_still_shows() -> None:
    values: list[float | None] = [None, None, 70.0, None, 80.0, 85.0]
    png = line_chart("QA", days(6), [Line("QA", values, BLUE)], y_label="QA")
    found = colour_mask(png, BLUE)
    box = found.getbbox()
    assert box is not None
    step_guess = (box[2] - box[0]) / 3  # days 2..5 span the line's width
    lone_point = found.crop((box[0], 0, math.floor(box[0] + step_guess / 2), HEIGHT))
    assert count(lone_point) > 20


def test_nan_is_treated_like_a_missing_day() -> None:
    with_nan = line_chart("m", days(4), [Line("m", [1.0, math.nan, 3.0, 4.0], BLUE)], y_label="%")
    with_none = line_chart("m", days(4), [Line("m", [1.0, None, 3.0, 4.0], BLUE)], y_label="%")
    assert with_nan == with_none


def test_negative_values_are_drawn_below_the_zero_line() -> None:
    profit: list[float | None] = [-200.0 + 25 * i for i in range(21)]  # -200 .. 300
    png = line_chart("Profit", days(21), [Line("Profit", profit, GREEN)], y_label="USD")
    axes = full_width_rows(png, "#9a9a9a")
    axis_rows = sorted({y for y in axes if y - 1 not in axes})  # first row of each line
    assert len(axis_rows) == 2  # zero, and the floor of the plot
    zero_row = axis_rows[0]
    line = colour_mask(png, GREEN)
    assert count(line.crop((0, 120, WIDTH, zero_row - 3))) > 0
    assert count(line.crop((0, zero_row + 3, WIDTH, HEIGHT))) > 0


def test_negative_bars_hang_below_zero() -> None:
    png = bar_chart("Profit", ["a", "b", "c"], [300.0, -150.0, 80.0], y_label="USD", colour=GREEN)
    axes = full_width_rows(png, "#9a9a9a")
    zero_row = min(y for y in axes if y - 1 not in axes)
    bars = colour_mask(png, GREEN)
    middle_third = (WIDTH // 3, 0, 2 * WIDTH // 3, HEIGHT)
    below = bars.crop(middle_third).crop((0, zero_row + 3, WIDTH // 3, HEIGHT))
    above = bars.crop(middle_third).crop((0, 120, WIDTH // 3, zero_row - 3))
    assert count(below) > 1000 and count(above) == 0


@pytest.mark.parametrize(
    "empty",
    [
        lambda: line_chart("Margin", [], [], y_label="%"),
        lambda: line_chart("Margin", days(3), [Line("m", [None, None, None], BLUE)], y_label="%"),
        lambda: line_chart("Margin", days(3), [], y_label="%"),
        lambda: bar_chart("Margin", [], [], y_label="%", colour=BLUE),
        lambda: bar_chart("Margin", ["a"], [math.nan], y_label="%", colour=BLUE),
    ],
)
def test_no_data_gives_a_same_sized_image_saying_so(empty: object) -> None:
    assert callable(empty)
    png = empty()
    image = decode(png)
    assert image.size == (WIDTH, HEIGHT)
    reference = line_chart("Margin", [], [], y_label="%")
    assert png == reference  # every way of having no data looks the same
    with_data = line_chart("Margin", days(3), [Line("m", [1.0, 2.0, 3.0], BLUE)], y_label="%")
    assert png != with_data
    assert count(colour_mask(png, BLUE)) == 0
    # The notice is written in the middle of the image.
    inked = mask(png, range(0, 200), range(0, 200), range(0, 200))
    centre = inked.crop((WIDTH // 2 - 150, HEIGHT // 2 - 40, WIDTH // 2 + 150, HEIGHT // 2 + 60))
    assert count(centre) > 100


def test_the_same_input_gives_the_same_bytes() -> None:
    lines = [Line("a", [1.0, None, 3.0, -2.0], BLUE), Line("b", [2.0, 2.5, None, 1.0], ORANGE)]

    def draw_line() -> bytes:
        return line_chart("T", days(4), lines, y_label="y", marked=[3], reference=0.5)

    def draw_bars() -> bytes:
        return bar_chart("T", ["x", "y"], [3.0, -1.0], y_label="y", colour=BLUE, highlight=[0])

    assert draw_line() == draw_line()
    assert draw_bars() == draw_bars()
    assert draw_line() != line_chart("T", days(4), lines, y_label="y")


def test_the_png_carries_no_metadata() -> None:
    png = bar_chart("T", ["x"], [1.0], y_label="y", colour=BLUE)
    chunks = []
    at = 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        chunks.append(png[at + 4 : at + 8])
        at += 12 + length
    assert set(chunks) <= {b"IHDR", b"PLTE", b"IDAT", b"IEND"}


def test_highlighted_bars_are_red_and_plain_ones_are_not() -> None:
    names = ["transcription", "translation", "summaries", "code review"]
    values = [91.0, 62.0, 88.0, 95.0]
    plain = bar_chart("QA", names, values, y_label="QA", colour=BLUE, reference=85)
    assert count(red_mask(plain)) == 0
    flagged = bar_chart("QA", names, values, y_label="QA", colour=BLUE, highlight=[1])
    red = red_mask(flagged)
    box = red.getbbox()
    assert box is not None and count(red) > 2000
    # The red bar is the second of four: it lies in the second quarter of the plot.
    bars = colour_mask(flagged, BLUE).getbbox()
    assert bars is not None
    quarter = (bars[2] - bars[0]) / 4
    assert bars[0] + quarter <= box[0] and box[2] <= bars[0] + 2 * quarter


def test_user_text_is_drawn_as_given_and_long_or_accented_names_still_fit() -> None:
    odd = ["{__import__('os')}", "%s%s%n", "<script>alert(1)</script>", "a\nb", ""]
    png = bar_chart("{title}", odd, [1.0, 2.0, 3.0, 4.0, 5.0], y_label="%d", colour=BLUE)
    assert decode(png).size == (WIDTH, HEIGHT)
    # The bundled font has no accented letters: they are drawn without the accent.
    accented = bar_chart("Café", ["café crème"], [4.0], y_label="€ spent", colour=BLUE)
    plain = bar_chart("Cafe", ["cafe creme"], [4.0], y_label="€ spent", colour=BLUE)
    assert accented == plain
    many = [f"a very long task type name {i}" for i in range(40)]
    png = bar_chart("Many", many, [float(i) for i in range(40)], y_label="n", colour=BLUE)
    assert decode(png).size == (WIDTH, HEIGHT)


def test_inconsistent_input_is_refused() -> None:
    with pytest.raises(ValueError, match="3 days"):
        line_chart("x", days(3), [Line("a", [1.0, 2.0], BLUE)], y_label="y")
    with pytest.raises(ValueError, match="marked"):
        line_chart("x", days(3), [Line("a", [1.0, 2.0, 3.0], BLUE)], y_label="y", marked=[3])
    with pytest.raises(ValueError, match="categories"):
        bar_chart("x", ["a", "b"], [1.0], y_label="y", colour=BLUE)
    with pytest.raises(ValueError, match="highlight"):
        bar_chart("x", ["a"], [1.0], y_label="y", colour=BLUE, highlight=[-1])


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (0.0, 100.0, [0, 20, 40, 60, 80, 100]),
        (87.0, 92.0, [87, 88, 89, 90, 91, 92]),
        (-120.0, 340.0, [-200, 0, 200, 400]),
        (0.1, 0.3, [0.1, 0.15, 0.2, 0.25, 0.3]),
    ],
)
def test_axis_ticks_are_round_and_cover_the_data(
    lo: float, hi: float, expected: list[float]
) -> None:
    assert _ticks(lo, hi) == pytest.approx(expected)


def test_axis_ticks_are_four_to_six_round_steps_for_any_range() -> None:
    for exponent in range(-3, 7):
        for lo_share, span_share in [(0.0, 1.0), (-0.37, 1.9), (0.93, 0.07), (-2.2, 0.31)]:
            lo = lo_share * 10.0**exponent
            hi = lo + span_share * 10.0**exponent
            ticks = _ticks(lo, hi)
            step = ticks[1] - ticks[0]
            assert 4 <= len(ticks) <= 6
            assert ticks[0] <= lo + step * 1e-6 and ticks[-1] >= hi - step * 1e-6
            mantissa = step / 10 ** math.floor(math.log10(step) + 1e-9)
            assert min(abs(mantissa - m) for m in (1, 2, 5, 10)) < 1e-6
