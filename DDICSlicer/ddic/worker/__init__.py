"""JSON-lines worker processes for the Slicer GUI: ``python -m ddic.worker``.

The GUI keeps heavy libraries (torch, SAM) and long computations out of Slicer's own process by talking
to a worker over pipes. Protocol (:mod:`ddic.worker.protocol`): one JSON object per line on stdin, one
final response line per request on stdout carrying the request's ``id``; stdout carries nothing else
(logs go to stderr). Ops are a dict of name → handler (:data:`ddic.worker.server.DEFAULT_OPS`), so a
new op such as ``translate`` is one more entry.
"""
