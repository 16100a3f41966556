"""Hypothesis settings for the property tests.

Each test names its own ``max_examples`` (sized so the folder runs in well under a minute on
two cores); ``SEAWATCH_PROPERTY_SCALE`` multiplies them for a deeper run, e.g. ``10`` before
a release. No profile is loaded here: a loaded profile is process-wide and would change the
other test folders' settings too.
"""
