"""Ready-made Klaviyo flows on this service's metrics, created as drafts for a marketer to finish."""
