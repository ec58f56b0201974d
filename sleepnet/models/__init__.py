"""sleepnet.models: one file per model kind, behind the one interface the scorer uses.

* ``cnn_lstm``: the CNN-LSTM (an epoch encoder CNN, a one-direction LSTM over the last five epochs);
* ``cnn_lstm_weights``: loading and saving a CNN-LSTM weights folder;
* ``cnn_sequence``: the CNN-LSTM's stager (epochs to stages over the last five epochs);
* ``feature_gbm``: the real-trained feature stager (gradient-boosted trees over spectral features);
* ``gbm_trees``: gradient-boosted trees evaluated with numpy alone (LightGBM's text format).
"""
