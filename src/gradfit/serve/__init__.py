"""The playground: ``gradfit serve`` runs a local web app to watch a fit learn on your own data.

:mod:`gradfit.serve.app` holds the routes, :mod:`gradfit.serve.runs` a run in its worker thread,
:mod:`gradfit.serve.datasets` the uploads, :mod:`gradfit.serve.requests` what the page may ask, and
``static/`` the page itself (no build step). Nothing in the library imports this package.
"""
