"""Vocoders: turn the VC log-mel spectrogram (:mod:`speechrep.features.logmel`) back into audio.

All vocoders implement :class:`speechrep.vocoder.base.Vocoder`; :func:`speechrep.train.pretrained.load_vocoder`
picks Griffin-Lim or a trained neural vocoder from a name or an experiment directory.
"""
