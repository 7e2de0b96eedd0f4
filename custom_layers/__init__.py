"""Keras layers written from their equations: the LSTM cell this project trains,
and the forecasting arithmetic around it (custom_layers.transforms)."""

from custom_layers import transforms
from custom_layers.lstm_cell import LSTMCell, LSTMGates, gate_activations

__all__ = ["LSTMCell", "LSTMGates", "gate_activations", "transforms"]
