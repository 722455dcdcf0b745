"""A fake monotonic clock with sync and async sleeps, for the drivers' retry loops (unit tests
patch `_drivers._clock`, `_sleep` and `_asleep` with it)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FakeClock:
    """Time moves only when a test or a fake client moves it; sleeps are recorded."""

    now: float = 1000.0
    waits: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
