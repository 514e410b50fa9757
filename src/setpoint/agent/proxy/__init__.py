"""The node proxy (kube-proxy's role): what makes a Service's cluster IP and node ports reach
its pods. :mod:`.servicemap` turns Services and EndpointSlices into the ports to serve,
:mod:`.nftables` and :mod:`.userspace` are the two data paths, :mod:`.addresses` puts the
cluster IPs on an interface of the node and :mod:`.proxier` runs it all in the agent."""
