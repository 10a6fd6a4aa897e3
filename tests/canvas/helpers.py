"""Shared by the tests of canvas/."""

import random


class FixedRandom(random.Random):
    """random() always returns the same draw, to pin the jitter."""

    def __init__(self, draw: float) -> None:
        super().__init__(0)
        self.draw = draw

    def random(self) -> float:
        return self.draw
