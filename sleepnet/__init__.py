"""sleepnet: the model, its preprocessing, file readers, training and evaluation.

Nothing in here knows about LSL or the terminal; the live path (`streamer`, `scorer`)
and the batch path (`sleepstream score`) both call the same functions from here.
"""
