"""Segmentation of full plankton frames by knowledge-distilled self-training (issue 27)."""
