"""sleepnet.train: where labelled nights come from, and training with its evaluation protocol.

* ``datasets``: where labelled nights come from: Sleep-EDF, a folder, the simulator;
* ``feature_training``: training and evaluating the feature stager on real labelled nights;
* ``training``: training the CNN-LSTM: the subject-wise protocol, the loop, evaluation.
"""
