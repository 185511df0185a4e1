"""Network shapes that follow the image side (the one rule, shared by every model).

A convolutional model halves the image side with stride-2 stages while the side
is even and the halved side is still at least :data:`MIN_SIDE`:
28 → 14 → 7 (2 stages), 32 → 16 → 8 → 4 (3), 64 → 32 → 16 → 8 → 4 (4),
8 → 4 (1). Generators grow back with the same stages in reverse, so a model
built for one side is built for any other by the same code.
"""

from __future__ import annotations

#: the smallest feature-map side a stride-2 stage may produce
MIN_SIDE = 4


def stage_sides(side: int) -> list[int]:
    """The feature-map sides from the image side down: ``[side, side/2, …, base]``."""
    if side < 1:
        raise ValueError(f"image side must be positive, got {side}")
    sides = [int(side)]
    while sides[-1] % 2 == 0 and sides[-1] // 2 >= MIN_SIDE:
        sides.append(sides[-1] // 2)
    return sides


def down_stages(side: int) -> int:
    """How many stride-2 stages take ``side`` to its base side (28 → 2, 32 → 3, 64 → 4)."""
    return len(stage_sides(side)) - 1


def base_side(side: int) -> int:
    """The side of the smallest feature map (28 → 7, 32 → 4, 64 → 4)."""
    return stage_sides(side)[-1]
