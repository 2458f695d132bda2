"""Console pages, one module per page group, each with ``router = APIRouter()``.

``dataops.console.router`` includes every module of this package that has a ``router``.
"""
