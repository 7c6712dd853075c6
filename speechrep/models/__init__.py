"""Neural network modules: encoders, context networks, critics and the trainable models.

Each model module registers its builder with :mod:`speechrep.models.registry` on import
(``cpc``: :mod:`speechrep.models.cpc`, ``dim`` / ``autoencoder``: :mod:`speechrep.models.dim`).
Submodules are imported explicitly so that importing this package stays cheap.
"""
