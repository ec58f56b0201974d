"""sleepnet.models: one module per model kind, behind the one interface the scorer uses.

* ``base``: the protocols (:class:`~sleepnet.models.base.StagingModel`,
  :class:`~sleepnet.models.base.Stager`), the weights-folder format and the table of kinds;
* ``feature_gbm``: kind ``feature-gbm``, gradient-boosted trees over causal spectral features
  (``FeatureGbmModel``, ``FeatureGbmStager``); its trees: ``gbm_trees`` (LightGBM's text
  format evaluated with numpy alone);
* ``gru``: kind ``gru``, a causal GRU over the same features, run in numpy (``GruModel``,
  ``GruStager``);
* ``ensemble``: kind ``ensemble``, members of other kinds averaged (``EnsembleModel``,
  ``EnsembleStager``);
* ``cnn_lstm_stager``: kind ``cnn-lstm`` (``CnnLstmModel``, ``CnnLstmStager``, its weights
  folder); its torch network: ``cnn_lstm``.

Each kind module has one folder loader, ``load_folder(d, cfg)``; load models with
:func:`sleepnet.weights.load_model`.
"""
