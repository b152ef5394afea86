"""The playground's API through Starlette's TestClient: uploads, formula checks and runs over the WebSocket."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient  # noqa: E402

import gradfit  # noqa: E402
from gradfit.data import synthetic  # noqa: E402
from gradfit.serve.app import create_app  # noqa: E402

LINE_CSV = synthetic.linear(seed=0).to_csv(index=False).encode()


@pytest.fixture
def client():
    with TestClient(create_app(max_upload_bytes=200_000)) as c:
        yield c


def upload(client, content: bytes, name: str = "line.csv"):
    return client.post("/api/datasets", files={"file": (name, io.BytesIO(content), "text/csv")})


def test_an_upload_gives_its_columns_rows_and_first_lines(client):
    r = upload(client, LINE_CSV)
    assert r.status_code == 200, r.text
    summary = r.json()
    assert summary["name"] == "line.csv" and summary["rows"] == 100
    assert summary["columns"] == ["x", "y"] and summary["numeric"] == ["x", "y"]
    assert len(summary["head"]) == 8
    assert client.get(f"/api/datasets/{summary['id']}").json() == summary


@pytest.mark.parametrize(
    "content, name, status, words",
    [
        (b"", "empty.csv", 400, "empty"),
        (b"x,y\n1,2\n", "table.xlsx", 400, "Save the table as CSV"),
        (b"x,y\n" + b"1,2\n" * 60_000, "big.csv", 413, "up to"),
        (b'x,y\n1,"2\n3,4\n', "quote.csv", 400, "line.csv"),
    ],
)
def test_a_bad_upload_says_what_is_wrong_and_names_the_users_file(client, content, name, status, words):
    r = upload(client, content, name)
    assert r.status_code == status, r.text
    message = r.json()["error"]
    assert name in message and "gradfit-serve" not in message  # never the server's own path
    if words != "line.csv":
        assert words in message


def test_the_builtin_datasets_and_the_zoo_are_listed(client):
    assert {d["id"] for d in client.get("/api/builtin").json()} == {
        "builtin:linear",
        "builtin:rollercoaster",
        "builtin:blobs",
    }
    assert client.get("/api/datasets/builtin:rollercoaster").json()["columns"] == ["t", "speed"]
    assert "linear" in {m["name"] for m in client.get("/api/models").json()}


def test_a_formula_is_checked_with_the_place_of_its_mistake(client):
    good = client.post("/api/formula", json={"text": "a*exp(-b*x) + c", "columns": ["x"]}).json()
    assert good == {"ok": True, "params": ["a", "b", "c"], "inputs": ["x"]}
    bad = client.post("/api/formula", json={"text": "a*x + __import__('os')", "columns": ["x"]}).json()
    assert bad["ok"] is False and bad["offset"] is not None
    unknown = client.post("/api/formula", json={"text": "a*sinn(x)", "columns": ["x"]}).json()
    assert unknown["ok"] is False and "sinn" in unknown["message"]


def run_to_end(socket) -> tuple[list, dict, list]:
    """Every message of a run until its end: the rows, the end message, and the rest."""
    rows, other = [], []
    while True:
        message = socket.receive_json()
        if message["type"] == "rows":
            rows.extend(message["rows"])
        elif message["type"] == "end":
            return rows, message, other
        else:
            other.append(message)


START = {
    "type": "start",
    "data": "builtin:linear",
    "model": "a*x + b",
    "y": "y",
    "options": {"optimizer": "sgd", "lr": 0.1, "steps": 40, "seed": 3},
}


def test_a_run_streams_a_row_per_step_and_ends_with_gradfit_fits_parameters_bit_for_bit(client):
    with client.websocket_connect("/api/run") as socket:
        socket.send_json(START)
        rows, end, other = run_to_end(socket)
    direct = gradfit.fit("a*x + b", synthetic.linear(seed=0), y="y", optimizer="sgd", lr=0.1, steps=40, seed=3)
    assert [m["type"] for m in other] == ["started", "params"]
    assert (
        other[0]["command"]
        == "gradfit fit builtin:linear --model 'a*x + b' --y y --optimizer sgd --lr 0.1 --steps 40 --seed 3"
    )
    assert other[1]["names"] == ["a", "b"]
    assert [int(r[0]) for r in rows] == list(range(40))
    assert end["ok"] and end["steps"] == 40 and end["stop_reason"] == direct.stop_reason
    assert end["params_hex"] == {k: float(v).hex() for k, v in direct.flat_params.items()}
    assert [r[1] for r in rows] == list(direct.history["loss"][:40])
    assert [r[:2] for r in end["rows"]] == [[40.0, direct.loss]]  # the row after the last step
    history = client.get(end["downloads"]["history.csv"])
    assert history.status_code == 200 and history.text.startswith("step")


def test_stop_ends_the_run_at_the_next_step_and_reset_replays_the_same_rows(client):
    with client.websocket_connect("/api/run") as socket:
        socket.send_json({**START, "paused": True})
        assert socket.receive_json()["type"] == "started"
        assert socket.receive_json()["type"] == "params"
        first = socket.receive_json()["rows"]
        assert [r[0] for r in first] == [0]  # held before the first update
        for k in range(1, 4):
            socket.send_json({"type": "step"})
            assert [r[0] for r in socket.receive_json()["rows"]] == [k]
        socket.send_json({"type": "stop"})
        rows, end, _ = run_to_end(socket)
        assert rows == [] and end["stop_reason"] == "interrupted" and end["steps"] == 3
        socket.send_json({"type": "reset", "paused": False})
        replay, again, _ = run_to_end(socket)
    with client.websocket_connect("/api/run") as socket:
        socket.send_json(START)
        want, _, _ = run_to_end(socket)
    assert replay == want and again["steps"] == 40


def test_a_failing_run_ends_with_its_message_and_the_server_goes_on(client):
    with client.websocket_connect("/api/run") as socket:
        socket.send_json({**START, "y": "nope"})
        _, end, _ = run_to_end(socket)
        assert end["ok"] is False and "nope" in end["message"] and "internal error" not in end["message"]
        socket.send_json({**START, "options": {"lr": -1}})
        _, end, _ = run_to_end(socket)
        assert end["ok"] is False and "lr" in end["message"]
        socket.send_json({**START, "options": {"checkpoint_dir": "/tmp"}})
        assert "cannot set checkpoint_dir" in socket.receive_json()["message"]
        socket.send_json(START)
        _, end, _ = run_to_end(socket)
        assert end["ok"]


def test_a_page_of_another_origin_is_refused(client):
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect):
        with client.websocket_connect("/api/run", headers={"origin": "http://evil.example"}) as socket:
            socket.receive_json()
    with client.websocket_connect("/api/run", headers={"origin": "http://testserver"}) as socket:
        socket.send_json({"type": "play"})
        assert "start one first" in socket.receive_json()["message"]


def test_the_page_gets_the_data_and_the_models_curve_for_the_last_row(client):
    with client.websocket_connect("/api/run") as socket:
        socket.send_json({**START, "options": {"optimizer": "sgd", "lr": 0.1, "steps": 5}})
        rows, end, other = run_to_end(socket)
    data = other[1]["data"]
    assert data["kind"] == "curve" and len(data["x"]) == 100 and len(data["grid"]) == 200
    a, b = end["params"]["a"], end["params"]["b"]
    np.testing.assert_allclose(end["curve"], [a * x + b for x in data["grid"]], rtol=1e-12)


def test_a_landscape_is_the_exact_loss_around_the_run_with_the_others_held(client):
    """Over a and c of a*x**2 + b*x + c (linear in its parameters: the statistics answer), b held at the run's
    value: every grid point equals the mean squared error computed directly."""
    with client.websocket_connect("/api/run") as socket:
        socket.send_json({**START, "model": "a*x**2 + b*x + c", "options": {"optimizer": "sgd", "lr": 0.1, "steps": 7}})
        _, end, _ = run_to_end(socket)
        socket.send_json({"type": "landscape", "pair": ["a", "c"], "span": [[-1.0, 3.0], [0.0, 4.0]]})
        grid = socket.receive_json()
        socket.send_json({"type": "landscape", "pair": ["a", "a"], "span": [[0, 1], [0, 1]]})
        assert "two different parameters" in socket.receive_json()["message"]
        socket.send_json({"type": "landscape", "pair": ["a", "b"], "span": [[1, 0], [0, 1]]})
        assert "low < high" in socket.receive_json()["message"]
    assert grid["type"] == "landscape" and len(grid["a"]) == 41 and len(grid["loss"]) == 41
    assert grid["run"] == end["run"]  # tagged with its run: the page drops a landscape of a run it has replaced
    data = synthetic.linear(seed=0)
    x, y = data["x"].to_numpy(np.float64), data["y"].to_numpy(np.float64)
    b = end["params"]["b"]
    for i, j in [(0, 0), (7, 30), (40, 40), (20, 3)]:
        a, c = grid["a"][j], grid["b"][i]
        want = np.mean((a * x**2 + b * x + c - y) ** 2)
        assert grid["loss"][i][j] == pytest.approx(want, rel=1e-9)


def corpus():
    from test_bad_input_corpus import CORPUS

    return {name: case for name, case in CORPUS.items() if "read" not in case[2]}  # the page sets no read options


@pytest.mark.parametrize("name", list(corpus()))
def test_each_bad_file_of_the_clis_corpus_gets_the_clis_message(tmp_path, name):
    """Uploaded, then fitted: the message is the one ``gradfit fit`` gives (naming the user's file), from the
    upload where reading fails, else from the run; never the server's own copy of the file."""
    from test_bad_input_corpus import _make

    path, options, message = _make(tmp_path, name)
    with TestClient(create_app(max_upload_bytes=4 * 2**20)) as client:
        r = upload(client, path.read_bytes(), path.name)
        if r.status_code != 200:
            said = r.json()["error"]
        else:
            with client.websocket_connect("/api/run") as socket:
                socket.send_json(
                    {**START, "data": r.json()["id"], "model": "linear", **options, "options": {"steps": 3}}
                )
                _, end, _ = run_to_end(socket)
            assert end["ok"] is False
            said = end["message"]
    assert re.search(message, said), said
    assert "gradfit-serve" not in said and "internal error" not in said


def test_a_finished_run_offers_its_files_and_its_animation(client):
    with client.websocket_connect("/api/run") as socket:
        socket.send_json({**START, "options": {"optimizer": "sgd", "lr": 0.1, "steps": 12}})
        _, end, _ = run_to_end(socket)
    result = client.get(end["downloads"]["result.json"])
    assert result.status_code == 200 and result.json()["steps"] == 12
    assert result.json()["data"]["path"] == "builtin:linear"
    gif = client.get(end["downloads"]["animation.gif"])
    assert gif.status_code == 200 and gif.content[:6] == b"GIF89a"
    html = client.get(end["downloads"]["animation.html"])
    assert html.status_code == 200 and b"<html" in html.content[:2000].lower()
    assert client.get(f"/api/runs/{end['run']}/../../etc/passwd").status_code == 404
    assert client.get(f"/api/runs/{end['run']}/checkpoint.pt").status_code == 404


def test_fixed_parameters_bounds_and_starts_reach_the_fit_and_its_command(client):
    request = {
        **START,
        "init": {"a": 0.5, "b": 2.0},
        "fix": ["b"],
        "bounds": {"a": [None, 1.5]},
        "options": {"optimizer": "sgd", "lr": 0.1, "steps": 30},
    }
    with client.websocket_connect("/api/run") as socket:
        socket.send_json(request)
        _, end, other = run_to_end(socket)
    assert end["params"]["b"] == 2.0 and end["params"]["a"] == pytest.approx(1.5)  # held; stopped at its bound
    command = other[0]["command"]
    assert "--init a=0.5,b=2.0 --fix b --bound a=:1.5" in command
    direct = gradfit.fit(
        "a*x + b", synthetic.linear(seed=0), y="y", init={"a": 0.5, "b": 2.0}, fix=["b"], bounds={"a": (None, 1.5)},
        optimizer="sgd", lr=0.1, steps=30,
    )  # fmt: skip
    assert end["params_hex"] == {k: float(v).hex() for k, v in direct.flat_params.items()}
    assert end["stability"]["limit"] == pytest.approx(direct.diagnostics["stability_limit"]["limit"])


def test_the_command_the_page_shows_reproduces_the_run_bit_for_bit(client, tmp_path):
    import json
    import shlex

    from typer.testing import CliRunner

    from gradfit.cli.app import app

    request = {
        **START,
        "model": "a*exp(-k*x) + c",
        "init": {"a": -2.0, "k": 0.5, "c": 3.0},
        "fix": ["c"],
        "bounds": {"k": [0.0, None]},
        "options": {"optimizer": "adam", "lr": 0.05, "steps": 25, "seed": 7, "dtype": "float64"},
    }
    with client.websocket_connect("/api/run") as socket:
        socket.send_json(request)
        _, end, other = run_to_end(socket)
    words = shlex.split(other[0]["command"])
    assert words[:2] == ["gradfit", "fit"]
    ran = CliRunner().invoke(app, [*words[1:], "--out", str(tmp_path / "run"), "--quiet"])
    assert ran.exit_code in (0, 1), ran.output
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert {k: float(v).hex() for k, v in saved["params"].items()} == end["params_hex"]


def test_a_classifier_gets_its_classes_and_the_models_call_over_the_plane(client):
    """Two inputs and a target of a few whole numbers: the points by class and, over a grid of the plane, the
    chance of class 1 (a logit through the sigmoid under bce)."""
    request = {
        **START,
        "data": "builtin:blobs",
        "model": "logistic",
        "y": "label",
        "options": {"loss": "bce", "steps": 20},
    }
    with client.websocket_connect("/api/run") as socket:
        socket.send_json(request)
        _, end, other = run_to_end(socket)
    data = other[1]["data"]
    assert data["kind"] == "classes" and data["classes"] == [0, 1] and data["input"] == ["x1", "x2"]
    assert len(end["curve"]) == 48 * 48 and all(0.0 <= p <= 1.0 for p in end["curve"])
    gx, gy = data["grid"]
    p = end["params"]
    logit = p["w[x1]"] * gx[5] + p["w[x2]"] * gy[7] + p["w[intercept]"]
    assert end["curve"][7 * 48 + 5] == pytest.approx(1 / (1 + np.exp(-logit)), rel=1e-9)


def _runs_alive() -> int:
    import threading

    return sum(1 for t in threading.enumerate() if t.name == "gradfit-run" and t.is_alive())


def test_a_run_stops_when_its_page_goes(client):
    """A held run, then the page closes: the run's thread ends at its step boundary, within seconds."""
    import time

    before = _runs_alive()
    with client.websocket_connect("/api/run") as socket:
        socket.send_json({**START, "paused": True, "options": {"steps": 10_000, "lr": 0.1, "optimizer": "sgd"}})
        assert socket.receive_json()["type"] == "started"
        assert _runs_alive() == before + 1
    deadline = time.monotonic() + 15
    while _runs_alive() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _runs_alive() == before


def test_the_stability_limit_is_measured_before_a_run_for_the_slider(client):
    with client.websocket_connect("/api/run") as socket:
        socket.send_json({"type": "limit", "data": "builtin:linear", "model": "a*x + b", "y": "y"})
        limit = socket.receive_json()
        socket.send_json({"type": "limit", "data": "builtin:linear", "model": "a*x + b", "y": "nope"})
        unknown = socket.receive_json()
    direct = gradfit.fit("a*x + b", synthetic.linear(seed=0), y="y", optimizer="sgd", lr=0.1, steps=1)
    assert limit["limit"] == pytest.approx(direct.diagnostics["stability_limit"]["limit"], rel=1e-12)
    assert unknown["limit"] is None and "nope" in unknown["message"]


def test_a_parquet_upload_is_read_and_fitted(client):
    buffer = io.BytesIO()
    synthetic.linear(seed=2).to_parquet(buffer)
    r = upload(client, buffer.getvalue(), "line.parquet")
    assert r.status_code == 200 and r.json()["rows"] == 100 and r.json()["columns"] == ["x", "y"]
    with client.websocket_connect("/api/run") as socket:
        socket.send_json({**START, "data": r.json()["id"], "options": {"optimizer": "sgd", "lr": 0.1, "steps": 10}})
        _, end, other = run_to_end(socket)
    direct = gradfit.fit("a*x + b", synthetic.linear(seed=2), y="y", optimizer="sgd", lr=0.1, steps=10)
    assert end["params_hex"] == {k: float(v).hex() for k, v in direct.flat_params.items()}
    assert other[0]["command"].startswith("gradfit fit line.parquet ")


def test_a_file_over_the_limit_is_refused_before_it_is_read(client, monkeypatch):
    """Declared too long: refused at once. Sent with chunks (no declared length): refused by the spooled file's
    size, without reading it into memory (the store never sees it)."""
    from gradfit.serve.datasets import Datasets

    monkeypatch.setattr(Datasets, "upload", lambda *args: pytest.fail("an oversized file reached the store"))
    big = b"x,y\n" + b"1,2\n" * 100_000
    r = upload(client, big, "big.csv")
    assert r.status_code == 413 and "up to" in r.json()["error"]
    body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n\r\n' + big + b"\r\n--b--\r\n"
    r = client.post(
        "/api/datasets",
        content=iter([body[i : i + 65536] for i in range(0, len(body), 65536)]),
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert r.status_code == 413 and "big.csv: the upload is" in r.json()["error"]
