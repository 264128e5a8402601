"""Data: the digital fetal-head phantom (labels, US and MRI renderers) and the real-dataset preparers."""
