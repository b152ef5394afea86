"""The playground's web app: static pages, the data and formula checks, and one WebSocket per run.

Routes
------
``GET /``                         the page (``static/index.html``); ``/static/...`` its scripts and styles
``GET /api/builtin``              the built-in datasets
``GET /api/models``               the zoo's models, with their formulas
``POST /api/datasets``            upload a file (multipart field ``file``): its columns and first rows
``GET /api/datasets/{id}``        the same for a dataset already here (``builtin:NAME`` too)
``POST /api/formula``             check a formula against the columns: its parameters, or the mistake's place
``WS /api/run``                   a run: the page sends ``start`` and then ``step``, ``play``, ``pause``,
                                  ``stop``, ``reset``, ``speed``, ``landscape``, ``limit``; the server streams
                                  rows, the model's curve, the landscapes and limits asked for, and the end
``GET /api/runs/{id}/{file}``     ``result.json``, ``history.csv``, ``animation.gif`` or ``animation.html`` of
                                  a finished run

Every error the user can fix comes back as ``{"error": message}`` (HTTP 400, 413 for a file too large) or, on
the WebSocket, ``{"type": "error", "message": ...}``; a run's failure never stops the server. WebSocket
connections whose ``Origin`` is not this server are refused: another site open in the same browser cannot
drive the playground.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from gradfit.errors import DataError, FormulaError, GradfitError
from gradfit.serve.curves import Curves, finite
from gradfit.serve.datasets import BUILTIN, Datasets, too_large
from gradfit.serve.landscape import Landscapes
from gradfit.serve.requests import RunRequest, parse_request
from gradfit.serve.runs import Run

STATIC = Path(__file__).parent / "static"
#: Messages a second the server sends a page at most while a run streams (rows are batched between them).
SENDS_PER_SECOND = 60
#: Rows in one message at most.
ROWS_PER_SEND = 5_000
#: Finished runs kept for their downloads.
KEPT_RUNS = 16
#: What a finished run offers: its files as ``gradfit fit`` writes them, and its animation.
DOWNLOADS = ("result.json", "history.csv", "animation.gif", "animation.html")
#: Bytes of a multipart upload beyond its file's (boundaries, headers) that the declared length may carry.
UPLOAD_OVERHEAD = 64 * 1024
#: Frames of a downloaded animation at most.
ANIMATION_FRAMES = 60


def create_app(max_upload_bytes: int | None = None) -> Starlette:
    """The playground as an ASGI app (``uvicorn`` serves it; Starlette's TestClient tests it)."""
    datasets = Datasets() if max_upload_bytes is None else Datasets(max_upload_bytes)
    finished: dict[str, tuple[Any, Any]] = {}  # run id -> (result, its Table), newest last
    outputs = Path(tempfile.mkdtemp(prefix="gradfit-serve-runs-"))

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def builtin(request: Request) -> Response:
        return JSONResponse(
            [{"id": f"builtin:{name}", "name": name, "about": about} for name, about in BUILTIN.items()]
        )

    async def models(request: Request) -> Response:
        from gradfit.models.catalog import zoo_catalog

        zoo = [{"name": e.name, "formula": e.formula, "summary": e.summary} for e in zoo_catalog()]
        return JSONResponse(zoo)

    async def upload(request: Request) -> Response:
        # A file over the limit is refused before it is read: by the request's declared length (nothing spooled),
        # else by the spooled file's size (nothing read into memory).
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > datasets.max_bytes + UPLOAD_OVERHEAD:
            return _error(too_large(int(declared), datasets.max_bytes), 413)
        try:
            form = await request.form(max_files=1, max_fields=4)
        except Exception as err:  # multipart's own refusals: malformed
            return _error(f"The upload could not be read: {err}. Upload one CSV or Parquet file.")
        item = form.get("file")
        if item is None or isinstance(item, str):
            return _error("No file in the upload: send it as the form field 'file'.")
        if item.size is not None and item.size > datasets.max_bytes:
            return _error(too_large(item.size, datasets.max_bytes, item.filename), 413)
        content = await item.read()
        try:
            table = await asyncio.to_thread(datasets.upload, item.filename or "data.csv", content)
        except DataError as err:
            status = 413 if len(content) > datasets.max_bytes else 400
            return _error(str(err), status)
        return JSONResponse(table.summary())

    async def dataset(request: Request) -> Response:
        try:
            table = await asyncio.to_thread(datasets.get, request.path_params["id"])
        except GradfitError as err:
            return _error(str(err), 404)
        return JSONResponse(table.summary())

    async def formula(request: Request) -> Response:
        body = await _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return _error("Send {'text': FORMULA, 'columns': [NAMES]}.")
        return JSONResponse(check_formula(body["text"], body.get("columns") or []))

    async def download(request: Request) -> Response:
        run_id, name = request.path_params["id"], request.path_params["file"]
        if run_id not in finished or name not in DOWNLOADS:
            return _error("No such file: the run is not finished, or is no longer kept.", 404)
        folder = outputs / run_id
        result, table = finished[run_id]
        try:
            await asyncio.to_thread(write_download, result, table, folder, name)
        except GradfitError as err:
            return _error(str(err), 400)
        return FileResponse(folder / name, filename=name)

    async def run_socket(socket: WebSocket) -> None:
        if not same_origin(socket.headers.get("origin"), socket.headers.get("host")):
            await socket.close(code=1008)
            return
        await socket.accept()
        await Session(socket, datasets, finished).serve()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:  # the uploads and the runs' files go with the server
            datasets.close()
            shutil.rmtree(outputs, ignore_errors=True)

    routes = [
        Route("/", index),
        Route("/api/builtin", builtin),
        Route("/api/models", models),
        Route("/api/datasets", upload, methods=["POST"]),
        Route("/api/datasets/{id:path}", dataset),
        Route("/api/formula", formula, methods=["POST"]),
        Route("/api/runs/{id}/{file}", download),
        WebSocketRoute("/api/run", run_socket),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


def same_origin(origin: str | None, host: str | None) -> bool:
    """Whether a WebSocket's ``Origin`` is this server (no Origin: not a browser page, e.g. a test client)."""
    if origin is None:
        return True
    return bool(host) and urlsplit(origin).netloc.lower() == str(host).lower()


def check_formula(text: str, columns: list) -> dict[str, Any]:
    """``{"ok": True, "params": [...], "inputs": [...]}`` or ``{"ok": False, "message", "offset", "length"}``:
    the formula compiled by the same safe compiler a fit uses (never evaluated as Python)."""
    from gradfit.models.builder import build_model

    names = [c for c in columns if isinstance(c, str)]
    try:
        model = build_model(text, names)
    except FormulaError as err:
        return {"ok": False, "message": err.reason, "offset": err.offset, "length": err.length}
    except GradfitError as err:
        return {"ok": False, "message": str(err), "offset": None, "length": 0}
    return {"ok": True, "params": model.flat_names(), "inputs": list(model.inputs)}


class Session:
    """One page's WebSocket: at most one run at a time; the run stops when the page goes."""

    def __init__(self, socket: WebSocket, datasets: Datasets, finished: dict):
        self.socket, self.datasets, self.finished = socket, datasets, finished
        self.run: Run | None = None
        self.request: RunRequest | None = None
        self.run_id = ""
        self.pump: asyncio.Task | None = None
        self.last_row: list[float | None] | None = None
        self.landscapes: tuple[str, Landscapes] | None = None  # the run they were built for, and them
        self.table: Any = None
        self.side_tasks: set[asyncio.Task] = set()  # landscapes and limits being computed

    async def serve(self) -> None:
        try:
            while True:
                message = await self.socket.receive_text()
                await self.handle(message)
        except WebSocketDisconnect:
            pass
        finally:
            await self.halt()

    async def handle(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            await self.send({"type": "error", "message": "Messages are JSON objects."})
            return
        kind = message.get("type") if isinstance(message, dict) else None
        run = self.run
        if kind == "start":
            await self.start(message)
        elif kind == "reset":
            if self.request is None:
                await self.send({"type": "error", "message": "Nothing to reset: start a run first."})
            else:
                await self.start(None, paused=bool(message.get("paused", True)))
        elif kind in ("landscape", "limit"):
            # Computed beside the controls (a grid or a one-step fit can take a second on large data): a stop
            # or a pause sent meanwhile is not held up behind it.
            task = asyncio.create_task(self.landscape(message) if kind == "landscape" else self.limit(message))
            self.side_tasks.add(task)
            task.add_done_callback(self.side_tasks.discard)
        elif run is None and kind in ("step", "play", "pause", "stop", "speed"):
            await self.send({"type": "error", "message": f"No run to {kind}: start one first."})
        elif run is not None and kind == "step":
            run.step(int(message.get("count", 1)) if isinstance(message.get("count", 1), int) else 1)
        elif run is not None and kind in ("play", "pause", "stop"):
            getattr(run, kind)()
        elif run is not None and kind == "speed":
            value = message.get("steps_per_second")
            run.speed(value if isinstance(value, (int, float)) and not isinstance(value, bool) else None)
        else:
            await self.send({"type": "error", "message": f"Unknown message type {kind!r}."})

    async def landscape(self, message: dict) -> None:
        """The loss over two parameters around where the run is now (see :mod:`gradfit.serve.landscape`)."""
        run, run_id, row, table = self.run, self.run_id, self.last_row, self.table
        if run is None or run.built is None or row is None:
            await self.send({"type": "error", "message": "A landscape needs a run that has taken its first step."})
            return
        try:
            if self.landscapes is None or self.landscapes[0] != run_id:  # one per run: its model, loss and data
                loss = str(run.options.get("loss") or "mse")
                built = await asyncio.to_thread(Landscapes, run.built, table.frame, run.options.get("y"), loss)
                self.landscapes = (run_id, built)
            grids = self.landscapes[1]
            answer = await asyncio.to_thread(grids.grid, run.param_names, row, message.get("pair"), message.get("span"))
        except GradfitError as err:
            await self.send({"type": "error", "message": str(err)})
            return
        await self.send({**answer, "run": run_id})  # the page draws it only for the run it is showing

    async def limit(self, message: dict) -> None:
        """The stability limit 2/λmax of the loss at the start these settings give, for the learning-rate slider
        before a run (a one-step sgd fit measures it as every fit does; see :func:`stability_limit_at_start`)."""
        try:
            request = parse_request(message)
            table = await asyncio.to_thread(self.datasets.get, request.data)
            limit = await asyncio.to_thread(stability_limit_at_start, request, table)
        except GradfitError as err:  # the settings are not complete yet: the run will say what is wrong
            await self.send({"type": "limit", "limit": None, "message": str(err)})
            return
        await self.send({"type": "limit", **(limit or {"limit": None})})

    async def start(self, message: dict | None, paused: bool | None = None) -> None:
        await self.halt()
        try:
            request = parse_request(message) if message is not None else self.request
            assert request is not None
            table = await asyncio.to_thread(self.datasets.get, request.data)
        except GradfitError as err:
            await self.send({"type": "error", "message": str(err)})
            return
        import gradfit

        self.request, self.table, self.landscapes, self.last_row = request, table, None, None
        self.run_id = secrets.token_hex(6)
        held = bool(message.get("paused", False)) if message is not None else bool(paused)
        arguments = request.fit_arguments()
        self.run = Run(gradfit.fit, request.model, table.source, arguments, held, table.renamed).start()
        command = request.command(table.name)
        await self.send({"type": "started", "run": self.run_id, "command": command, "paused": held})
        self.pump = asyncio.create_task(self.guarded_stream(self.run, self.run_id, table))

    async def guarded_stream(self, run: Run, run_id: str, table) -> None:
        """:meth:`stream`, and a failure of its own said to the page as one (a bug: the page must not wait)."""
        try:
            await self.stream(run, run_id, table)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            message = f"internal error while streaming the run: {type(err).__name__}: {err}"
            await self.send({"type": "end", "ok": False, "error_kind": type(err).__name__, "message": message})

    async def stream(self, run: Run, run_id: str, table) -> None:
        """Send the run's rows, at most :data:`SENDS_PER_SECOND` messages a second (each with the model's curve
        for its last row), then its end."""
        curves: Curves | None = None
        last_step = -1
        while True:
            done = run.done
            rows = run.take(ROWS_PER_SEND)
            if rows:
                last_step = int(rows[-1][0] or 0)
                self.last_row = rows[-1]
            if curves is None and run.built is not None and run.param_names:
                loss = str(run.options.get("loss") or "mse")
                curves = await asyncio.to_thread(Curves, run.built, table.frame, run.options.get("y"), loss)
                await self.send({"type": "params", "names": run.param_names, "data": curves.points()})
            if rows:
                message: dict[str, Any] = {"type": "rows", "rows": rows}
                if curves is not None:
                    flat = dict(zip(run.param_names, rows[-1][5:]))
                    message["curve"] = await asyncio.to_thread(curves.predictions, flat)
                await self.send(message)
            if done and not rows:
                break
            await asyncio.sleep(1.0 / SENDS_PER_SECOND)
        end = run.end
        assert end is not None
        if end.result is None:
            await self.send({"type": "end", "ok": False, "error_kind": end.kind, "message": end.error})
            return
        result = end.result
        if result.data.get("path") and table.source != table.name:
            result.data["path"] = table.name  # the file as the user knows it (`gradfit plot` reads it from there)
        if table.renamed(result.message) != result.message:
            result = dataclasses.replace(result, message=table.renamed(result.message))
        self.finished[run_id] = (result, table)
        while len(self.finished) > KEPT_RUNS:
            self.finished.pop(next(iter(self.finished)))
        message = end_message(result, run_id, run.dropped)
        message["rows"] = final_rows(result, last_step)
        if message["rows"]:
            self.last_row = message["rows"][-1]
        if curves is not None:
            message["curve"] = await asyncio.to_thread(curves.predictions, message["params"])
        await self.send(message)

    async def send(self, message: dict) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await self.socket.send_text(json.dumps(message, allow_nan=False, default=_plain))

    async def halt(self) -> None:
        """Stop the current run (if any) and wait for its thread, so that a new one starts from a clean page."""
        run, pump = self.run, self.pump
        self.run = self.pump = None
        if run is not None:
            run.stop()
            await asyncio.to_thread(run.join, 10.0)
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump


def end_message(result, run_id: str, dropped: int) -> dict[str, Any]:
    """The end of a run for the page: why it stopped, the message, the final parameters and rows."""
    return {
        "type": "end",
        "ok": True,
        "run": run_id,
        "stop_reason": result.stop_reason,
        "message": result.message,
        "steps": result.steps,
        "loss": finite(result.loss),
        "params": {name: finite(v) for name, v in result.flat_params.items()},
        "params_hex": {name: float(v).hex() for name, v in result.flat_params.items()},
        "stability": _stability(result),
        "dropped": dropped,
        "downloads": {name: f"/api/runs/{run_id}/{name}" for name in DOWNLOADS},
    }


def stability_limit_at_start(request: RunRequest, table) -> dict[str, float | None] | None:
    """The stability limit of the loss at the start of ``request``'s fit: one plain sgd step with a learning rate
    far below any limit, whose fit measures it at its start (``diagnostics["stability_limit"]``)."""
    import warnings

    import gradfit

    arguments = request.fit_arguments()
    options = {k: v for k, v in arguments.items() if k in ("y", "x", "init", "fix", "bounds", "loss", "dtype")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = gradfit.fit(
            request.model, table.source, optimizer="sgd", lr=1e-12, steps=1, uncertainty=False,
            catch_signals=False, **options,
        )  # fmt: skip
    return _stability(result)


def write_download(result, table, folder: Path, name: str) -> None:
    """Write ``name`` of a finished run into ``folder`` (once): the run's files, or its animation (the model's
    curve moving onto the data, with the loss growing; :class:`gradfit.plots.FitAnimation`)."""
    if (folder / name).is_file():
        return
    if name in ("result.json", "history.csv"):
        from gradfit.outputs import save_run

        save_run(result, folder)
        return
    from gradfit.plots.animate import FitAnimation

    folder.mkdir(parents=True, exist_ok=True)
    FitAnimation(result, table.frame, max_frames=ANIMATION_FRAMES, show_loss=True).save(folder / name)


def final_rows(result, after: int) -> list[list[float | None]]:
    """The history's last row, when it comes after step ``after`` (the last streamed), as the stream's rows give
    it: the fit records the row of its final parameters after its last step boundary, which no callback sees."""
    history = result.history
    if not len(history) or int(history["step"][-1]) <= after:
        return []
    head = [history[c][-1] for c in ("step", "loss", "val_loss", "lr", "grad_norm")]
    return [[finite(float(v)) for v in (*head, *result.flat_params.values())]]


def _stability(result) -> dict[str, float | None] | None:
    """The stability limit measured at the start (2/λmax of the loss's curvature) and the optimizer's limit."""
    limit = result.diagnostics.get("stability_limit")
    if not isinstance(limit, dict):
        return None
    return {key: finite(float(limit[key])) if limit.get(key) is not None else None for key in ("limit", "lr_limit")}


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
