"""The interactive explorer: a local page that decodes on demand (``vaelab explore``).

:mod:`~vaelab.explorer.session` holds the models and answers requests; :mod:`~vaelab.explorer.server`
serves it over HTTP (the ``explore`` extra: starlette and uvicorn).
"""
