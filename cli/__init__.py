"""The command line (``app.py``): one module per concern.

``flowconfig`` reads flow.yml, builds and exports the flow; ``serve`` runs it; ``commands``
are the client commands (index, search, list, delete, stats, models); ``render`` prints their
results; ``main`` is the parser.
"""
