"""Evaluation: phone discovery (ABX, unit quality, boundaries, bitrate, probes) and voice conversion.

Modules are imported on demand (``from speechrep.eval.abx import ...``) so that importing
the package stays cheap; :func:`speechrep.eval.phone_discovery.run_phone_discovery` is the
one-call entry point of the phone-discovery evaluation.
"""
