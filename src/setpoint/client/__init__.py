"""API clients: the only way controllers, the scheduler and agents touch cluster state.

``api`` speaks HTTPS to the API server; ``informer`` keeps list+watch caches; ``workqueue``
feeds reconcile loops; ``discovery`` asks the server which resources it serves. Nothing here
imports the server side (``store``, ``api``).
"""
