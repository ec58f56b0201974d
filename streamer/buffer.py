"""A bounded ring buffer of the most recent samples of one channel."""
from __future__ import annotations

import numpy as np


class RingBuffer:
    """Keeps the last ``capacity`` float32 samples; appending never grows memory.

    Parameters
    ----------
    capacity : int
        Number of samples kept (e.g. 30 s x rate in Hz).
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self._data = np.full(capacity, np.nan, dtype=np.float32)
        self._pos = 0          # where the next sample goes
        self._count = 0        # samples held (<= capacity)

    @property
    def capacity(self) -> int:
        """Number of samples the buffer keeps at most."""
        return len(self._data)

    def __len__(self) -> int:
        return self._count

    def append(self, samples: np.ndarray) -> None:
        """Add samples (oldest first); only the last ``capacity`` are kept.

        Parameters
        ----------
        samples : numpy.ndarray
            The new samples, oldest first, in the channel's unit (flattened, stored as float32).
        """
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        n = len(x)
        if n == 0:
            return
        cap = self.capacity
        if n >= cap:
            self._data[:] = x[-cap:]
            self._pos = 0
            self._count = cap
            return
        first = min(n, cap - self._pos)
        self._data[self._pos:self._pos + first] = x[:first]
        if first < n:
            self._data[:n - first] = x[first:]
        self._pos = (self._pos + n) % cap
        self._count = min(cap, self._count + n)

    def append_missing(self, n: int) -> None:
        """Add ``n`` missing samples (NaN) without allocating more than ``capacity``.

        Parameters
        ----------
        n : int
            Number of missing samples; zero or less adds nothing.
        """
        if n > 0:
            self.append(np.full(min(n, self.capacity), np.nan, dtype=np.float32))

    def latest(self, n: int | None = None) -> np.ndarray:
        """A copy of the last ``n`` samples (all held when None), oldest first.

        Parameters
        ----------
        n : int, optional
            Number of samples wanted, clipped to those held; None (default) for all held.

        Returns
        -------
        numpy.ndarray
            float32 copy of at most ``n`` samples, oldest first (empty when none is held).
        """
        n = self._count if n is None else max(0, min(n, self._count))
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        start = (self._pos - n) % self.capacity
        if start + n <= self.capacity:
            return self._data[start:start + n].copy()
        return np.concatenate([self._data[start:], self._data[:self._pos]])
