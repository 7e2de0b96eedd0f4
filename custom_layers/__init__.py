"""Keras layers written from their equations: the LSTM cell this project trains."""

from custom_layers.lstm_cell import LSTMCell, LSTMGates, gate_activations

__all__ = ["LSTMCell", "LSTMGates", "gate_activations"]
