"""setpoint: a declarative, self-healing workload orchestrator that speaks the Kubernetes API."""
