"""Gradients through discrete choices: straight-through, Gumbel-softmax, REINFORCE.

Each estimator is a function (or a small module holding a baseline) that returns the
discrete value in the forward pass and a usable gradient in the backward pass.
"""

from speechrep.estimators.gumbel import TemperatureSchedule, gumbel_sigmoid, gumbel_softmax, sample_gumbel
from speechrep.estimators.reinforce import LearnedBaseline, MovingAverageBaseline, Reinforce, reinforce_surrogate
from speechrep.estimators.straight_through import st_binary, st_onehot, straight_through

__all__ = [
    "straight_through",
    "st_onehot",
    "st_binary",
    "sample_gumbel",
    "gumbel_softmax",
    "gumbel_sigmoid",
    "TemperatureSchedule",
    "reinforce_surrogate",
    "MovingAverageBaseline",
    "LearnedBaseline",
    "Reinforce",
]
