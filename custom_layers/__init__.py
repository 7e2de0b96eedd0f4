"""Keras layers written from their equations: the LSTM cell this project trains,
the layer that runs it over a sequence (custom_layers.lstm), and the forecasting arithmetic around it (custom_layers.transforms)."""

from custom_layers import transforms
from custom_layers.lstm import LSTM, fused_lstm, stepwise
from custom_layers.lstm_cell import LSTMCell, LSTMGates, gate_activations

__all__ = ["LSTM", "LSTMCell", "fused_lstm", "LSTMGates", "gate_activations", "stepwise",
           "transforms"]
