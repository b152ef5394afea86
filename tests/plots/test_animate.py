"""Animations: every frame shows the snapshot it claims, and the files decode as what they say."""

from __future__ import annotations

import base64
import io
import re

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from matplotlib import animation  # noqa: E402
from PIL import Image, ImageChops  # noqa: E402

import gradfit  # noqa: E402
from gradfit.analysis.fitted_data import run_data  # noqa: E402
from gradfit.errors import ConfigError  # noqa: E402
from gradfit.models.base import unflatten_params  # noqa: E402
from gradfit.plots.animate import FitAnimation, RaceAnimation  # noqa: E402
from gradfit.plots.animation_frames import sample_frames  # noqa: E402

FRAME_PNG = re.compile(r'frames\[\d+\] = "data:image/png;base64,([A-Za-z0-9+/=\\\n]+)"')


@pytest.fixture(scope="module")
def seed_fit():
    return gradfit.fit("linear", "builtin:linear", y="y", init={"a": [-1, 1]}, optimizer="sgd", lr=0.1, steps=100)


def _by_gid(ax, gid):
    return [a for a in ax.get_children() if a.get_gid() == gid]


def _model_at(result, step, x):
    """The oracle: the model evaluated at the history snapshot of ``step``."""
    params = unflatten_params(result.model.specs, result.history.params_at(int(step)), dtype=torch.float32)
    with torch.no_grad():
        return result.model(params, torch.as_tensor(x, dtype=torch.float32)).numpy()


# -- frame sampling -------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(m=st.integers(1, 3000), cap=st.integers(2, 300))
def test_sample_frames_properties(m, cap):
    idx = sample_frames(np.arange(m) * 3, max_frames=cap)
    assert len(idx) == min(m, cap)
    assert idx[0] == 0 and idx[-1] == m - 1
    assert np.all(np.diff(idx) > 0)


@pytest.mark.parametrize("bad", [1, 0, -5, 2.5, True, "10"])
def test_sample_frames_rejects_bad_cap(bad):
    with pytest.raises(ConfigError, match="max_frames"):
        sample_frames(range(10), max_frames=bad)


# -- the fit animation ----------------------------------------------------------------------------


def test_frames_are_sampled_snapshots(seed_fit):
    anim = FitAnimation(seed_fit)
    assert anim.n_frames == 100  # 101 snapshots, capped
    assert anim.frame_steps[0] == 0 and anim.frame_steps[-1] == 100
    assert set(anim.frame_steps) <= set(seed_fit.history.snapshot_steps)
    assert FitAnimation(seed_fit, max_frames=200).n_frames == 101


def test_each_drawn_line_is_the_model_at_its_snapshot(seed_fit):
    anim = FitAnimation(seed_fit, max_frames=30)
    fig, update = anim.make_figure(dpi=40)
    ax = fig.axes[0]
    (line,) = _by_gid(ax, "curve")
    (label,) = _by_gid(fig, "label")  # the frame label sits on the figure's top line
    data = run_data(seed_fit)
    x_data, y_data = data.x[:, 0].double().numpy(), data.y.double().numpy()
    for i in (0, 1, 14, 29):
        update(i)
        x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        step = anim.frame_steps[i]
        np.testing.assert_allclose(y, _model_at(seed_fit, step, x[:, None]), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(anim.curve_at(i)[1], y)
        assert label.get_text().startswith(f"step {step}  loss ")
    # the curve spans the data's x range on a sorted grid, and the scatter is the data
    assert np.all(np.diff(x) > 0)
    assert x[0] == pytest.approx(x_data.min(), rel=1e-6) and x[-1] == pytest.approx(x_data.max(), rel=1e-6)
    (points,) = _by_gid(ax, "data")
    np.testing.assert_allclose(np.asarray(points.get_offsets()), np.column_stack([x_data, y_data]), rtol=1e-6)


def test_gif_has_one_frame_per_sampled_snapshot_and_the_line_moves(seed_fit, tmp_path):
    anim = FitAnimation(seed_fit, max_frames=30, interval=40)
    path = anim.save(tmp_path / "fit.gif", dpi=40)
    assert path == tmp_path / "fit.gif"
    assert [p.name for p in tmp_path.iterdir()] == ["fit.gif"]  # no temporary left behind
    assert anim.frame_steps[0] == 0 and anim.frame_steps[-1] == 100
    with Image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == 30
        assert im.size == (round(anim.figsize[0] * 40), round(anim.figsize[1] * 40))
        assert im.info["duration"] == 40
        frames = []
        for i in (0, 10, 29):
            im.seek(i)
            frames.append(im.convert("RGB"))
    for a, b in ((0, 1), (1, 2), (0, 2)):
        assert ImageChops.difference(frames[a], frames[b]).getbbox() is not None


def test_html_page_is_self_contained_with_every_frame(seed_fit, tmp_path):
    anim = FitAnimation(seed_fit, max_frames=12)
    text = anim.save(tmp_path / "fit.html", dpi=40).read_text()
    assert text.lower().startswith("<!doctype html>") and "<html" in text and "<title>" in text
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*https?://""", text, re.IGNORECASE)
    assert "https://" not in text and "http://" not in text
    frames = FRAME_PNG.findall(text)
    assert len(frames) == anim.n_frames == 12
    png = base64.b64decode(frames[-1].replace("\\\n", "").replace("\n", ""))
    with Image.open(io.BytesIO(png)) as im:
        assert im.format == "PNG" and im.size == (round(anim.figsize[0] * 40), round(anim.figsize[1] * 40))
    assert f"new Array({anim.n_frames})" in text


def test_repr_html_is_the_jshtml_player(seed_fit):
    anim = FitAnimation(seed_fit, max_frames=3)
    html = anim._repr_html_()
    assert len(FRAME_PNG.findall(html)) == 3 and "<img" in html and "fa fa-" not in html


def test_mp4_without_ffmpeg_is_a_config_error(seed_fit, tmp_path):
    if animation.writers.is_available("ffmpeg"):
        pytest.skip("ffmpeg is installed here, so MP4 can be saved")
    with pytest.raises(ConfigError, match="ffmpeg"):
        FitAnimation(seed_fit, max_frames=3).save(tmp_path / "fit.mp4")
    assert not list(tmp_path.iterdir())


def test_unknown_extension_is_a_config_error(seed_fit, tmp_path):
    with pytest.raises(ConfigError, match=r"\.gif.*\.mp4.*\.html"):
        FitAnimation(seed_fit, max_frames=3).save(tmp_path / "fit.png")
    assert not list(tmp_path.iterdir())


def test_bad_options_are_config_errors(seed_fit):
    with pytest.raises(ConfigError, match="interval"):
        FitAnimation(seed_fit, interval=0)
    with pytest.raises(ConfigError, match="landscape"):
        FitAnimation(seed_fit, landscape="a[0]")
    with pytest.raises(ConfigError, match="max_frames"):
        FitAnimation(seed_fit, max_frames=1)


def test_landscape_and_loss_panels_follow_the_snapshots(seed_fit):
    from gradfit.analysis.landscape import compute_landscape

    land = compute_landscape(seed_fit, n=21)
    anim = FitAnimation(seed_fit, landscape=land, show_loss=True, max_frames=10)
    fig, update = anim.make_figure(dpi=40)
    main, ax_land, ax_loss = [
        ax for ax in fig.axes if _by_gid(ax, "curve") or _by_gid(ax, "current") or _by_gid(ax, "loss-now")
    ]
    h = seed_fit.history
    for i in (0, 4, 9):
        update(i)
        step = int(anim.frame_steps[i])
        snap = h.params_at(step)
        (dot,) = _by_gid(ax_land, "current")
        assert (dot.get_xdata()[0], dot.get_ydata()[0]) == pytest.approx((snap["a[0]"], snap["a[1]"]), rel=1e-12)
        np.testing.assert_allclose(anim.current_point(i), [snap["a[0]"], snap["a[1]"]])
        (path,) = _by_gid(ax_land, "path")
        assert len(path.get_xdata()) == int(np.sum(h.snapshot_steps <= step))
        (now,) = _by_gid(ax_loss, "loss-now")
        row = int(np.nonzero(h.step == step)[0][0])
        assert (now.get_xdata()[0], now.get_ydata()[0]) == pytest.approx((step, h.loss[row]))
        assert len(_by_gid(ax_loss, "loss")[0].get_xdata()) == row + 1
    # the loss spans two decades here? then the axis is logarithmic, as the loss plot decides
    from gradfit.plots.loss import uses_log_scale

    assert ax_loss.get_yscale() == ("log" if uses_log_scale(h.loss) else "linear")


def test_landscape_by_names(seed_fit):
    anim = FitAnimation(seed_fit, landscape=("a[1]", "a[0]"), max_frames=4)
    assert anim.landscape.names == ("a[1]", "a[0]")
    snap = seed_fit.history.params_at(int(anim.frame_steps[-1]))
    np.testing.assert_allclose(anim.current_point(3), [snap["a[1]"], snap["a[0]"]])


def test_several_inputs_draw_predicted_against_observed():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"u": rng.normal(size=60), "v": rng.normal(size=60)})
    df["z"] = 2 * df.u - df.v + 0.1 * rng.normal(size=60)
    r = gradfit.fit("p*u + q*v", df, y="z", optimizer="sgd", lr=0.1, steps=20)
    anim = FitAnimation(r, df, max_frames=5)
    fig, update = anim.make_figure(dpi=40)
    (points,) = _by_gid(fig.axes[0], "predictions")
    x = df[list(r.model.inputs)].to_numpy()
    for i in (0, 4):
        update(i)
        offsets = np.asarray(points.get_offsets())
        np.testing.assert_allclose(offsets[:, 0], df.z.to_numpy(), rtol=1e-6)
        np.testing.assert_allclose(offsets[:, 1], _model_at(r, anim.frame_steps[i], x), rtol=1e-5, atol=1e-6)


# -- the race -------------------------------------------------------------------------------------


def test_race_animation_moves_one_path_per_run(tmp_path):
    from gradfit.experiments.race import run_race

    race = run_race(
        "linear",
        "builtin:linear",
        y="y",
        init={"a": [-1.0, 1.0]},
        n=21,
        runs=[
            {"optimizer": "sgd", "lr": 0.1, "steps": 10},
            {"optimizer": "adam", "lr": 0.1, "steps": 30},
            {"optimizer": "momentum", "lr": 0.05, "steps": 30},
        ],
    )
    anim = RaceAnimation(race, max_frames=8)
    assert anim.frame_steps[0] == 0 and anim.frame_steps[-1] == 30 and anim.n_frames == 8
    fig, update = anim.make_figure(dpi=40)
    ax_land = next(ax for ax in fig.axes if _by_gid(ax, "current"))
    paths, dots = _by_gid(ax_land, "path"), _by_gid(ax_land, "current")
    assert len(paths) == len(dots) == 3
    assert len({p.get_color() for p in paths}) == 3
    for i in (0, 3, 7):
        update(i)
        step = anim.frame_steps[i]
        for dot, result in zip(dots, race.results):
            shown = min(step, result.steps)  # the short run freezes at its end
            snap = result.history.params_at(int(max(s for s in result.history.snapshot_steps if s <= shown)))
            assert (dot.get_xdata()[0], dot.get_ydata()[0]) == pytest.approx((snap["a[0]"], snap["a[1]"]))
        np.testing.assert_allclose(anim.current_points(i)[:, 0], [d.get_xdata()[0] for d in dots])
    path = anim.save(tmp_path / "race.gif", dpi=30)
    with Image.open(path) as im:
        assert im.n_frames == 8


# -- layout: no text runs into another ------------------------------------------------------------


def drawn_texts(fig):
    """Every non-empty text a full draw of ``fig`` puts on the canvas, with its box in pixels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    drawn, draw = [], Text.draw

    def spy(self, renderer):
        if self.get_visible() and self.get_text().strip():
            drawn.append((self.get_text(), self.get_window_extent(renderer)))
        return draw(self, renderer)

    Text.draw = spy
    try:
        FigureCanvasAgg(fig).draw()
    finally:
        Text.draw = draw
    return drawn


def assert_no_text_overlaps(fig):
    texts = drawn_texts(fig)
    assert len(texts) > 10
    width, height = fig.bbox.width, fig.bbox.height
    for k, (text, box) in enumerate(texts):
        assert box.x0 >= -1 and box.y0 >= -1 and box.x1 <= width + 1 and box.y1 <= height + 1, text
        for other, box2 in texts[k + 1 :]:
            assert not box.overlaps(box2), (text, other)


@pytest.fixture(scope="module")
def seasonal():
    """A trend and a yearly cycle (co2-like): a long formula, a four-parameter landscape with two held."""
    rng = np.random.default_rng(0)
    t = np.arange(0.0, 16000.0, 7.0)
    co2 = 315 + 0.004 * t + 3 * np.sin(2 * np.pi * t / 365.25) + rng.normal(0, 0.5, t.size)
    df = pd.DataFrame({"t": t, "co2": co2})
    r = gradfit.fit("a + b*t + c*sin(2*pi*t/365.25) + d*cos(2*pi*t/365.25)", df, y="co2", optimizer="lm", steps=20)
    return r, df


def test_three_panel_frames_have_no_overlapping_text(seasonal):
    from gradfit.analysis.landscape import compute_landscape

    r, df = seasonal
    anim = FitAnimation(r, df, landscape=compute_landscape(r, df, params=("a", "b"), n=21), show_loss=True)
    fig, update = anim.make_figure(dpi=80, frozen=False)
    for i in (0, anim.n_frames - 1):
        update(i)
        assert_no_text_overlaps(fig)
    # The heading says what is fitted, and by which method (unless it had to be cut to fit beside the label).
    heading = fig.get_suptitle()
    assert heading.startswith("Fitting co2 = a + b*t")
    assert heading.endswith("(Levenberg-Marquardt)") or heading.endswith("…")
    (label,) = _by_gid(fig, "label")
    assert label.get_text() == f"iteration {anim.frame_steps[-1]}  loss {anim.frame_losses[-1]:.3g}"


def test_race_frames_have_no_overlapping_text():
    from gradfit.experiments.race import run_race

    race = run_race(
        "a*t**2 + b*t + c",
        "builtin:rollercoaster",
        y="speed",
        n=21,
        steps=30,
        scale=True,
        runs=[{"optimizer": "sgd", "lr": 0.3}, {"optimizer": "adam", "lr": 0.1}, {"optimizer": "momentum", "lr": 0.1}],
    )
    anim = RaceAnimation(race, max_frames=5)
    fig, update = anim.make_figure(dpi=80, frozen=False)
    for i in (0, 4):
        update(i)
        assert_no_text_overlaps(fig)


# -- speed without changing a pixel ------------------------------------------------------------------


def test_frozen_frames_are_the_full_draws(seed_fit):
    """Frames drawn over the baked backdrop equal frames drawn from scratch, to the rounding of blending."""
    from gradfit.analysis.landscape import compute_landscape
    from gradfit.plots.backdrop import render

    anim = FitAnimation(seed_fit, landscape=compute_landscape(seed_fit, n=21), show_loss=True, max_frames=10)
    frozen, update = anim.make_figure(dpi=50)
    full, update_full = anim.make_figure(dpi=50, frozen=False)
    assert not frozen.axes[0].xaxis.get_visible()  # the axes really are baked, not redrawn
    for i in (0, 3, 9):
        update(i)
        update_full(i)
        a, b = render(frozen).astype(int), render(full).astype(int)
        assert a.shape == b.shape
        assert np.abs(a - b).max() <= 4


def test_gif_frames_are_the_rendered_frames_on_one_palette(seed_fit, tmp_path):
    from gradfit.plots.backdrop import render

    anim = FitAnimation(seed_fit, max_frames=8)
    path = anim.save(tmp_path / "fit.gif", dpi=40)
    fig, update = anim.make_figure(dpi=40)
    with Image.open(path) as im:
        palettes = set()
        for i in range(im.n_frames):
            im.seek(i)
            if im.getpalette():  # None: the frame uses the file's global palette
                palettes.add(bytes(im.getpalette()))
            update(i)
            gif = np.asarray(im.convert("RGB"), dtype=int)
            drawn = render(fig)[..., :3].astype(int)
            assert np.abs(gif - drawn).mean() < 2.0  # only the quantisation of a 256-colour palette
    assert len(palettes) == 1


# -- Levenberg-Marquardt runs are labelled as such ----------------------------------------------------


def test_lm_animation_counts_iterations(seasonal):
    r, df = seasonal
    anim = FitAnimation(r, df, show_loss=True)
    fig, update = anim.make_figure(dpi=40)
    assert "Levenberg-Marquardt" in fig.get_suptitle() or fig.get_suptitle().endswith("…")
    assert fig.axes[1].get_xlabel() == "iteration"
    assert all(label.startswith("iteration ") for label in anim.frame_labels)


def test_a_frozen_figure_saved_at_another_dpi_is_drawn_in_full(seed_fit):
    """A user saving ``anim.animation()`` at their own dpi gets the right picture, not a misplaced backdrop."""
    import io

    anim = FitAnimation(seed_fit, show_loss=True, max_frames=5)
    frozen, update = anim.make_figure(dpi=40)
    full, update_full = anim.make_figure(dpi=40, frozen=False)
    update(2)
    update_full(2)
    pngs = []
    for fig in (frozen, full):
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=60)
        pngs.append(np.asarray(Image.open(buffer).convert("RGB"), dtype=int))
    assert pngs[0].shape == pngs[1].shape == (round(anim.figsize[1] * 60), round(anim.figsize[0] * 60), 3)
    assert np.abs(pngs[0] - pngs[1]).max() <= 4
