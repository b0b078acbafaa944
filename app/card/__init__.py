"""The insight card agents see: its views, the Klaviyo data behind it, and the cache in front of Klaviyo."""
