"""FraiseQL's GraphQL subscription engine (Go, through a CPython extension).

Importing this package does not start the engine: the native extension is
loaded on first use, so pre-forking servers can import it before fork().
"""
from . import _fraiseql_rs
from ._version import __version__

__all__ = ["__version__", "_fraiseql_rs"]
