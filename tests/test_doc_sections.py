"""scorer.doc_sections: a docstring built from a summary and another function's sections, or
filled from a module's fragments, reads as if written out (numpydoc parses it whole)."""
from __future__ import annotations

import pytest

from scorer.sinks import Sink
from sleepnet.doc_sections import filled, sections_of


def test_sections_of_keeps_the_summary_and_takes_the_owner_sections():
    @sections_of(Sink.truth, """Count a true stage.

        Longer text, indented as in any docstring.""")
    def truth(epoch: int, stage: str) -> None:
        return None

    assert truth.__doc__ == (
        "Count a true stage.\n\nLonger text, indented as in any docstring.\n\n"
        "Parameters\n----------\nepoch : int\n    The epoch's index, as in its record.\n"
        "stage : str\n    W, N1, N2, N3, REM or UNS.\n")


def test_sections_of_refuses_an_owner_without_sections():
    def bare() -> None:
        """Only a summary; no Parameters section under it."""

    with pytest.raises(ValueError, match="owner=.*bare"):
        sections_of(bare, "Something.")


def test_filled_indents_each_fragment_line_as_its_field():
    @filled(params="x : float\n    A length, m.\ny : float\n    A time, s.")
    def f(x: float, y: float) -> float:
        """Divide.

        Parameters
        ----------
        {params}

        Returns
        -------
        float
            ``x / y``, m/s.
        """
        return x / y

    assert "        x : float\n            A length, m.\n        y : float\n            A time, s.\n" in f.__doc__
    assert "{params}" not in f.__doc__


def test_filled_names_a_missing_fragment():
    def g() -> None:
        """Nothing.

        {absent}
        """

    with pytest.raises(KeyError, match="absent"):
        filled(present="x")(g)
