"""Small recipes beyond speech, built on the same objectives, estimators and bottlenecks.

- :mod:`.digits`: Deep InfoMax (JSD / DV / InfoNCE, global and local) and the
  reconstruction autoencoder on scikit-learn's bundled 8x8 digits.
- :mod:`.pydocs`: paragraphs and sentences of the Python documentation HTML pages that
  Debian ships (``python3.11-doc``), a tokenizer and a vocabulary.
- :mod:`.quickthought`: Quick Thought sentence encoders and next-sentence retrieval.
- :mod:`.seq2seq2seq`: an autoencoder whose code is a short sequence of words.
- :mod:`.listops`: ListOps-style expressions and a latent-tree (Gumbel Tree-LSTM) encoder.

The datasets are small and held in memory, so training uses the plain loop of
:mod:`.common` instead of the crop-based speech Trainer.
"""
