"""The plankton classifier: synthetic data, network, training and export."""
