"""The insight card inside each helpdesk's sidebar, one module per helpdesk (docs/vendors/<helpdesk>.md)."""
