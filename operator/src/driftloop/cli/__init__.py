"""``kubectl driftloop``: a kubectl plugin for driftloop (the ``kubectl-driftloop`` script).

``lineage`` and ``upload`` are pure (objects in, text or manifests out); ``main`` is the
command line and the only module here that talks to the API server. The plugin never
writes a user object's spec: it sets the annotations the operator honours
(``driftloop.dev/approval``, ``driftloop.dev/retrain-request``) and creates its own
ConfigMaps and Jobs for uploads.
"""
