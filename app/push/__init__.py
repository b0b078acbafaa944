"""A webhook's life: endpoint, outbox and group commit, publisher, delivery to Klaviyo, backlog mode."""
