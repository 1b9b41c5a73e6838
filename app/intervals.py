"""A static index of time intervals: overlap and nearest-endpoint queries in O(log n + k).

Speaker labelling asks, for every word of a meeting, which turn it overlaps; alignment asks
which segment holds each word. Scanning every interval per query is quadratic in meeting
length (hours of audio have ~10^5 words and ~10^4 turns), so both go through this index.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from itertools import accumulate


class IntervalIndex:
    """Intervals `(start, end)` in any order; answers name intervals by their position in the
    sequence given, and ties always go to the lowest position (as a linear scan would)."""

    def __init__(self, intervals: Sequence[tuple[int, int]]) -> None:
        self._intervals = list(intervals)
        by_start = sorted(range(len(self._intervals)), key=lambda i: self._intervals[i][0])
        self._by_start = by_start
        self._starts = [self._intervals[i][0] for i in by_start]
        # Ends are not sorted when intervals overlap, but their running maximum is: the first
        # interval that can reach past a point is found by bisecting it.
        self._reach = list(accumulate((self._intervals[i][1] for i in by_start), max))
        by_end = sorted(range(len(self._intervals)), key=lambda i: self._intervals[i][1])
        self._by_end = by_end
        self._ends = [self._intervals[i][1] for i in by_end]

    def __len__(self) -> int:
        return len(self._intervals)

    def _reaching(self, low: float, high: float, *, closed: bool) -> Iterator[int]:
        """Positions of intervals with start < high and end > low (closed: <= and >=)."""
        first = bisect_left(self._reach, low) if closed else bisect_right(self._reach, low)
        last = bisect_right(self._starts, high) if closed else bisect_left(self._starts, high)
        for k in range(first, last):
            index = self._by_start[k]
            start, end = self._intervals[index]
            if (end >= low and start <= high) if closed else (end > low and start < high):
                yield index

    def most_overlapping(self, start: int, end: int) -> int | None:
        """The interval sharing the most time with [start, end]; None if none shares any."""
        best, best_overlap = None, 0
        for index in sorted(self._reaching(start, end, closed=False)):
            s, e = self._intervals[index]
            overlap = min(end, e) - max(start, s)
            if overlap > best_overlap:
                best, best_overlap = index, overlap
        return best

    def containing(self, point: float) -> int | None:
        """The first interval with start <= point <= end, or None."""
        return min(self._reaching(point, point, closed=True), default=None)

    def nearest(self, point: float) -> int | None:
        """The interval with an endpoint nearest to `point` (distance to start or end)."""
        candidates: set[int] = set()
        for values, order in ((self._starts, self._by_start), (self._ends, self._by_end)):
            k = bisect_left(values, point)
            for j in (k - 1, k):
                if 0 <= j < len(values):
                    # Equal endpoint values tie: keep all of them so the lowest position wins.
                    lo, hi = bisect_left(values, values[j]), bisect_right(values, values[j])
                    candidates.update(order[lo:hi])
        if not candidates:
            return None

        def distance(index: int) -> tuple[float, int]:
            s, e = self._intervals[index]
            return min(abs(point - s), abs(point - e)), index

        return min(candidates, key=distance)
