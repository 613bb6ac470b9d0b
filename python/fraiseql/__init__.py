"""FraiseQL's GraphQL subscription engine (Go, through a CPython extension).

Importing this package does not start the engine: the native extension is
loaded on first use, so pre-forking servers can import it before fork().
"""
from . import _fraiseql_rs

__all__ = ["_fraiseql_rs"]
__version__ = "0.1.0"
