"""Networks: Q-networks, actor-critics, and the layer naming that makes transfer a list slice."""
