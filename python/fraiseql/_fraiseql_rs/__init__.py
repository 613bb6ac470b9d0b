"""The native bindings, under the names FraiseQL's PyO3 module uses."""
from . import subscriptions

__all__ = ["subscriptions"]
