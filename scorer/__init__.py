"""scorer: the epoch-by-epoch live loop, the records it makes, the sinks that publish them, and
the live session that builds them all from options (:mod:`scorer.session`)."""
