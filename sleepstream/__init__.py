"""sleepstream: the command line (``sleepstream --help``) over sleepnet, streamer, scorer and replay."""
__version__ = "0.1.0"
