"""scorer: the epoch-by-epoch live loop, the records it makes and the sinks that publish them."""
