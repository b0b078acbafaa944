"""The insight card inside each helpdesk's sidebar: one module per helpdesk or way of embedding it."""
