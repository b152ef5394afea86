"""gradfit's command-line program (typer + rich); the only place that imports them.

Run ``gradfit --help``. The entry point is :func:`gradfit.cli.app.main`.
"""
