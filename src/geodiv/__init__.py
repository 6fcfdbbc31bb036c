"""geodiv: study and design the geographic composition of pretraining data for geospatial foundation models.

Stages, in the order data flows (a stage imports only the stages before it):
``geo`` -> ``simearth`` -> ``data`` -> ``diversity`` -> ``models`` -> ``train`` -> ``evaluate`` -> ``study`` -> ``report``.
Foundation modules usable by every stage: ``errors``, ``atomic``, ``progress``, ``bands``, ``config``.
"""

__version__ = "0.1.0"
