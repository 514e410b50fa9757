"""The ServiceAccount controllers of the controller manager: the ``default`` ServiceAccount in
every namespace (``pkg/controller/serviceaccount``) and the ``kube-root-ca.crt`` ConfigMap in
every namespace (``pkg/controller/certificates/rootcacertpublisher``)."""

from setpoint.controllers.serviceaccount.rootca import RootCACertPublisher
from setpoint.controllers.serviceaccount.serviceaccounts import ServiceAccountsController

__all__ = ["RootCACertPublisher", "ServiceAccountsController"]
