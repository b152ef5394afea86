"""``gradfit serve``: the playground in the browser (:mod:`gradfit.serve`), on this machine.

The server binds 127.0.0.1 unless told otherwise (and warns when it listens beyond this machine: anyone who can
reach the port can run fits), prints its URL, and stops on Ctrl-C, or by itself after ``--quit-after`` seconds.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Annotated

import typer

from gradfit.cli.common_options import Debug
from gradfit.cli.console import EXIT_OK, console, err_console, guarded

__all__ = ["serve_command"]


def serve_command(
    host: Annotated[str, typer.Option("--host", help="Address to listen on (this machine only by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[
        int, typer.Option("--port", help="Port to listen on; 0 takes a free one.", min=0, max=65535)
    ] = 8000,
    open_page: Annotated[bool, typer.Option("--open", help="Open the page in the default browser.")] = False,
    max_upload_mb: Annotated[
        float, typer.Option("--max-upload-mb", help="Largest file the page may upload, in MB.", min=0.001)
    ] = 50.0,
    quit_after: Annotated[
        float | None, typer.Option("--quit-after", help="Stop by itself after this many seconds.", min=0.1)
    ] = None,
    debug: Debug = False,
) -> None:
    """Start the playground: upload a table or pick a built-in one, write a formula, and watch the fit learn.

    Prints the page's address; stop with Ctrl-C.

    Exit status: 0 stopped, 2 bad option or the address cannot be used.
    """
    with guarded(debug):
        from gradfit.errors import ConfigError

        listener = _listen(host, port)
        bound = listener.getsockname()[1]
        url = f"http://{host if ':' not in host else f'[{host}]'}:{bound}/"
        if not _loopback(host):
            err_console.print(
                f"Warning: listening on {host}, beyond this machine: anyone who can reach port {bound} can upload "
                "data and run fits. Use --host 127.0.0.1 unless that is what you want.",
                markup=False,
                style="yellow",
            )
        try:
            import uvicorn

            from gradfit.serve.app import create_app
        except ImportError as err:  # pragma: no cover - the dependencies come with gradfit
            raise ConfigError(f"The playground needs {err.name}: pip install starlette uvicorn websockets") from None
        app = create_app(max_upload_bytes=int(max_upload_mb * 2**20))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws="websockets-sansio", lifespan="on"))
        console.print(f"gradfit playground: {url}  (Ctrl-C stops it)", markup=False, highlight=False)
        if open_page:
            import webbrowser

            webbrowser.open(url)
        if quit_after is not None:
            import threading

            threading.Timer(quit_after, lambda: setattr(server, "should_exit", True)).start()
        server.run(sockets=[listener])
    raise typer.Exit(EXIT_OK)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (ConfigError saying why not: a port in use, an unknown address)."""
    from gradfit.errors import ConfigError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as err:
        listener.close()
        if err.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise ConfigError(
                f"Port {port} on {host} is in use. Choose another with --port (0 takes a free one)."
            ) from None
        raise ConfigError(f"Cannot listen on {host}:{port}: {err.strerror or err}. Check --host.") from None
    listener.listen(128)
    return listener
