"""A line coverage.py does not see run: after `await refused()`, whose awaited call raised
into it and was caught there, the rest of `doubled_after_refusal` runs untraced (CPython
3.11's settrace). The driver selects by function body, whose first line is seen."""
import asyncio


def _refuse() -> None:
    raise ValueError("refused")


async def refused() -> str:
    try:
        await asyncio.get_running_loop().run_in_executor(None, _refuse)
    except ValueError:
        return "refused"
    return "accepted"


async def doubled_after_refusal(n: int) -> tuple[str, int]:
    got = await refused()
    return got, n + n
