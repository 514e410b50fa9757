"""Admission plugins of the API server (kube-apiserver's ``plugin/pkg/admission``), each a
:class:`~setpoint.api.admission.AdmissionPlugin` on the server's admission chain."""
