"""driftloop model runtime: ``train``, ``profile`` and ``serve`` entrypoints.

Imports nothing of kopf or the Kubernetes client.  Heavy modules (numpy, pandas,
scikit-learn) are imported lazily by the command that needs them.
"""

__version__ = "0.1.0"
