"""The outcomes of a batch on their way to the caller, with backpressure on submits."""

from __future__ import annotations

import anyio

from ._outcomes import Outcome
from ._poll import receive_soon, send_soon


class OutcomeQueue:
    """
    Outcomes in completion order, and the *max_in_flight* slots the feed takes per item.

    An item's slot is freed when the caller takes its outcome, not when the job finishes,
    so a slow consumer holds back new submits and the outcomes waiting stay bounded.
    """

    def __init__(self, max_in_flight: int) -> None:
        #: Taken by the feed for each item it starts; freed by `take`.
        self.slots = anyio.Semaphore(max_in_flight)
        # Each outcome travels with whether it holds a slot.
        self._send, self._receive = anyio.create_memory_object_stream[tuple[Outcome, bool]](
            max(64, max_in_flight)
        )
        self._taken = 0

    async def put(self, outcome: Outcome) -> None:
        """Hand over the outcome of an item that holds a slot (waits while the queue is full)."""
        await self._send.send((outcome, True))

    async def restore(self, outcome: Outcome) -> None:
        """Hand over an outcome read back from the journal (it took no slot)."""
        await send_soon(self._send, (outcome, False))

    async def take(self) -> Outcome:
        """
        The next outcome; `StopAsyncIteration` once the batch has ended.

        Outcomes already waiting are taken without yielding first (a busy event loop would
        otherwise hand the caller one outcome per turn and let them pile up), but every
        64th take yields, so a caller with no awaits of its own never hogs the loop.
        """
        self._taken = (self._taken + 1) % 64
        try:
            if self._taken:
                outcome, holds_slot = await receive_soon(self._receive)
            else:
                outcome, holds_slot = await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None
        if holds_slot:
            self.slots.release()
        return outcome

    def end(self) -> None:
        """No more outcomes: `take` ends once the waiting ones are taken."""
        self._send.close()

    def close(self) -> None:
        """Close both ends (the batch is over, or never started)."""
        self._send.close()
        self._receive.close()
